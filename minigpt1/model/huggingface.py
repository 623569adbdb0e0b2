"""HuggingFace "openai-gpt" directories: read them without PyTorch, write them for PyTorch.

A directory holds `config.json` and `model.safetensors`. Safetensors is a plain header of
names, dtypes and shapes followed by raw little-endian bytes: reading it executes nothing,
unlike the pickle inside `pytorch_model.bin`, which we refuse to open. We read it with NumPy
alone (load_safetensors), float32, float16 and bfloat16 alike, into float32.

What transformers 5 writes, by the class that saved the model:

    OpenAIGPTModel              tokens_embed.weight, positions_embed.weight, h.0.attn...
    OpenAIGPTLMHeadModel        the same names prefixed with `transformer.`
    OpenAIGPTDoubleHeadsModel   `transformer.` names, the tied matrix stored once as
                                lm_head.weight (tokens_embed.weight left out), and the
                                multiple-choice head multiple_choice_head.summary.*

All three load. The LM head is tied to the token embedding, so the matrix is taken under
either name, and when both are stored they must be equal. The multiple-choice head belongs
to a fine-tuned task, not to the language model: it is left out with a one-line note. The
causal-mask buffers (`h.{i}.attn.bias`) some older files carry are skipped.

A directory is checked as strictly as our own checkpoints: every config value typed and
ranged (GPTConfig), every tensor finite, and a stored `lm_head.weight` equal to the token
embedding. A model trained untied (`tie_word_embeddings: false`) has a head of its own that
GPT-1's tied head cannot represent: dropping it would load a different model, so we refuse.
"""

import json
import math
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import backend
from ..config import GPTConfig, is_integer
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
TASK_HEAD = re.compile(r"^multiple_choice_head\.summary\.(weight|bias)$")  # DoubleHeads'
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


# safetensors dtype -> how its values are stored (bfloat16's as the raw 16 bits)
STORED = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def load_safetensors(path):
    """{name: float32 NumPy array} from a .safetensors file, read with NumPy alone.

        8 bytes        n, the header's length (unsigned, little-endian)
        n bytes        JSON: {name: {"dtype": "F16", "shape": [768, 2304],
                              "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
        the rest       the tensors' bytes, each at [begin, end) of this part, back to back

    float16 widens to float32 exactly; bfloat16 is float32's upper 16 bits (same sign and
    exponent, a shorter mantissa), so shifting them back up by 16 is exact too. safetensors'
    own NumPy reader refuses bfloat16, which NumPy lacks, hence this reader. Every offset and
    size is checked against the file before a byte is read.
    """
    path = Path(path)
    with open(path, "rb") as file:
        data_size, header = _read_header(file, path)
        entries = _check_entries(header, data_size, path)
        start = file.tell()
        tensors = {}
        for name, (dtype, shape, begin, end) in entries.items():
            file.seek(start + begin)
            raw = np.frombuffer(file.read(end - begin), dtype=STORED[dtype]).reshape(shape)
            tensors[name] = to_float32(raw, dtype)
    return tensors


def to_float32(raw, dtype):
    """A new float32 array (frombuffer's is read-only, and training updates weights in place)."""
    if dtype == "BF16":  # the upper half of a float32: put the 16 bits back on top
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def _read_header(file, path):
    """(size of the data part, the header's JSON object) of an open .safetensors file."""
    size = os.fstat(file.fileno()).st_size
    prefix = file.read(8)
    if len(prefix) < 8:
        raise FormatError(f"{path}: not a readable safetensors file ({size} bytes, too short "
                          "to hold the header length)")
    (length,) = struct.unpack("<Q", prefix)
    if length > size - 8:
        raise FormatError(f"{path}: not a readable safetensors file (its header claims "
                          f"{length:,} bytes, the file holds {size - 8:,} after the length)")
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FormatError(f"{path}: not a readable safetensors file (header: {err})") from err
    if not isinstance(header, dict):
        raise FormatError(f"{path}: not a readable safetensors file (the header is not a JSON "
                          "object)")
    header.pop("__metadata__", None)
    return size - 8 - length, header


def _check_entries(header, data_size, path):
    """{name: (dtype, shape, begin, end)}, after checking that every entry is well formed,
    floating point, sized for its shape, and that the tensors tile the data part exactly."""
    entries = {}
    for name, entry in header.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and _integers(entry.get("shape")) and _integers(entry.get("data_offsets"))
                and len(entry["data_offsets"]) == 2):
            raise FormatError(f"{path}: not a readable safetensors file (bad header entry for "
                              f"{name!r})")
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in STORED:
            raise FormatError(f"{path}: tensor {name} is {dtype}, expected floating point "
                              f"({', '.join(STORED)})")
        if end - begin != math.prod(shape) * np.dtype(STORED[dtype]).itemsize:
            raise FormatError(f"{path}: not a readable safetensors file (tensor {name} of shape "
                              f"{shape} in {dtype} cannot fill bytes {begin} to {end})")
        entries[name] = (dtype, shape, begin, end)
    covered = 0  # the tensors, in file order, must follow each other to the end of the file
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != covered:
            raise FormatError(f"{path}: not a readable safetensors file (tensor {name} starts "
                              f"at byte {begin} of the data, expected {covered})")
        covered = end
    if covered != data_size:
        raise FormatError(f"{path}: not a readable safetensors file (the tensors end at byte "
                          f"{covered} of the data, the file at {data_size})")
    return entries


def _integers(value):
    """A JSON list of non-negative integers (bools are not integers here)."""
    return isinstance(value, list) and all(is_integer(v) and v >= 0 for v in value)


def read_pretrained(path):
    """(GPTConfig, {name: float32 NumPy array}) from a local HuggingFace openai-gpt directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such model directory: {path}")
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(
            f"model config not found: {path / CONFIG}; a HuggingFace folder holds {CONFIG} "
            f"and {WEIGHTS}, a folder of the 2018 release params_shapes.json and "
            "params_0.npy ... params_9.npy"
        )
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
    params, task_head = {}, []
    for name, value in load_safetensors(weights).items():
        name = name.removeprefix("transformer.")
        if TASK_HEAD.match(name):
            task_head.append(name)
        elif not SKIPPED.match(name):
            params[name] = value
    if task_head:
        tqdm.write(f"note: {weights}: left out {', '.join(sorted(task_head))}, a fine-tuned "
                   "multiple-choice head (OpenAIGPTDoubleHeadsModel); loading the language "
                   "model", file=sys.stderr)
    tied = hf_config.get("tie_word_embeddings", True)
    head = params.pop(HEAD, None)
    if EMBEDDING not in params and head is not None and tied:
        params[EMBEDDING], head = head, None  # the tied matrix, stored under the head's name
    try:
        check_params(cfg, params, source=str(weights))  # names the file in any error
        check_finite(params, source=str(weights))
        check_tied_head(head, params[EMBEDDING], tied, str(weights))
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
