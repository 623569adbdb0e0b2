"""HuggingFace "openai-gpt" directories: read them without PyTorch, write them for PyTorch.

A directory holds `config.json` and `model.safetensors`. Safetensors is a plain header of
names, dtypes and shapes followed by raw little-endian bytes: reading it executes nothing,
unlike the pickle inside `pytorch_model.bin`, which we refuse to open.

The hub's file stores `OpenAIGPTModel`'s tensors (`tokens_embed.weight`, `h.0.attn...`); a
file saved from `OpenAIGPTLMHeadModel` prefixes them with `transformer.`. Both load. The LM
head is tied to `tokens_embed.weight`, so a stored `lm_head.weight` is redundant and skipped,
as are the causal-mask buffers (`h.{i}.attn.bias`) some older files carry.

A directory is checked as strictly as our own checkpoints: every config value typed and
ranged (GPTConfig), every tensor finite, and a stored `lm_head.weight` equal to the token
embedding. A model trained untied (`tie_word_embeddings: false`) has a head of its own that
GPT-1's tied head cannot represent: dropping it would load a different model, so we refuse.
"""

import re
from pathlib import Path

from .. import backend
from ..config import GPTConfig
from ..errors import FormatError
from ..fileio import atomic_path, read_json, write_json_atomic
from .parameters import check_finite, check_params

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"

# HuggingFace config key -> GPTConfig field
HF_TO_CONFIG = {
    "vocab_size": "vocab_size",
    "n_positions": "n_ctx",
    "n_embd": "n_embd",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "embd_pdrop": "embd_pdrop",
    "attn_pdrop": "attn_pdrop",
    "resid_pdrop": "resid_pdrop",
    "layer_norm_epsilon": "layer_norm_epsilon",
    "initializer_range": "initializer_range",
    "afn": "afn",
}
SKIPPED = re.compile(r"^(h\.\d+\.attn\.bias|position_ids)$")
HEAD, EMBEDDING = "lm_head.weight", "tokens_embed.weight"


def config_from_hf(hf):
    """GPTConfig from a HuggingFace openai-gpt config dict (unknown keys are ignored)."""
    if hf.get("model_type", "openai-gpt") != "openai-gpt":
        raise ValueError(f"model_type is {hf['model_type']!r}, expected 'openai-gpt'")
    if not isinstance(hf.get("tie_word_embeddings", True), bool):
        raise ValueError(f"tie_word_embeddings must be true or false, got "
                         f"{hf['tie_word_embeddings']!r}")
    fields = {ours: hf[theirs] for theirs, ours in HF_TO_CONFIG.items() if theirs in hf}
    if "n_ctx" not in fields and "n_ctx" in hf:  # legacy key of the 2018 conversion
        fields["n_ctx"] = hf["n_ctx"]
    return GPTConfig(**fields)


def config_to_hf(cfg):
    hf = {"architectures": ["OpenAIGPTLMHeadModel"], "model_type": "openai-gpt"}
    hf.update({theirs: getattr(cfg, ours) for theirs, ours in HF_TO_CONFIG.items()})
    hf["n_ctx"] = cfg.n_ctx  # legacy key, kept for older readers
    hf["tie_word_embeddings"] = True
    hf["minigpt1_format_version"] = FORMAT_VERSION
    return hf


def load_safetensors(path):
    """{name: numpy array} from a .safetensors file (NumPy only, no pickle)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, ValueError, TypeError, OverflowError, MemoryError) as err:
        raise FormatError(f"{path}: not a readable safetensors file ({err})") from err
    for name, value in tensors.items():
        if value.dtype.kind != "f":
            raise FormatError(f"{path}: tensor {name} is {value.dtype}, expected floating point")
    return tensors


def read_pretrained(path):
    """(GPTConfig, {name: NumPy array}) from a local HuggingFace openai-gpt directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such model directory: {path}")
    hf_config = read_json(path / CONFIG, what="model config")
    try:
        cfg = config_from_hf(hf_config)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path / CONFIG}: {err}") from err
    weights = path / WEIGHTS
    if not weights.is_file():
        hint = ""
        if (path / "pytorch_model.bin").exists():
            hint = (
                " (pytorch_model.bin is a pickle, which minigpt1 never opens; convert it once "
                "with transformers: model.save_pretrained(dir, safe_serialization=True))"
            )
        raise FileNotFoundError(f"{weights} not found{hint}")
    params = {}
    for name, value in load_safetensors(weights).items():
        name = name.removeprefix("transformer.")
        if not SKIPPED.match(name):
            params[name] = value
    head = params.pop(HEAD, None)
    try:
        check_params(cfg, params, source=str(weights))  # names the file in any error
        check_finite(params, source=str(weights))
        check_tied_head(head, params[EMBEDDING], hf_config.get("tie_word_embeddings", True),
                        str(weights))
    except ValueError as err:
        raise FormatError(str(err)) from err
    return cfg, params


def check_tied_head(head, embedding, tied, source):
    """Accept a stored lm_head.weight only as a copy of the token embedding, GPT-1's only
    output layer, and refuse a config that promises an untied head the file does not hold."""
    if head is None:
        if not tied:
            raise ValueError(f"{source}: the config says tie_word_embeddings: false but there "
                             f"is no {HEAD}; the model's output layer is missing")
        return
    if head.shape != embedding.shape or not (head == embedding).all():
        raise ValueError(
            f"{source}: {HEAD} differs from {EMBEDDING}: this model was trained with an "
            "untied output layer, which GPT-1 (and minigpt1) does not have, so loading it "
            "would silently change its predictions; use a model saved with tied embeddings"
        )


def write_pretrained(path, cfg, params):
    """Write config.json and model.safetensors (float32) that HuggingFace reads back as-is."""
    from safetensors.numpy import save_file

    path = Path(path)
    tensors = {
        name: backend.to_numpy(p).astype("float32", copy=False) for name, p in params.items()
    }
    with atomic_path(path / WEIGHTS) as tmp:
        # "format": "pt" tells transformers these are PyTorch-layout tensors
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json_atomic(path / CONFIG, config_to_hf(cfg))
