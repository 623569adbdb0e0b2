"""HuggingFace folders are checked as strictly as our own checkpoints.

Before: NaN weights loaded and `generate --temperature 0` printed garbage with exit 0; a
`layer_norm_epsilon` of "abc" ended in "unexpected UFuncTypeError", and -10 or NaN loaded; a
folder saved with `tie_word_embeddings: false` lost its `lm_head.weight` without a word, so
every logit was off. After: each is a FormatError that names the file and what is wrong.
"""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minigpt1 import GPT, from_pretrained
from minigpt1.cli import main
from minigpt1.config import GPTConfig
from minigpt1.errors import FormatError
from minigpt1.tokenizer.bpe import BPETokenizer

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 20


@pytest.fixture
def model_dir(tmp_path):
    """A complete HuggingFace-style folder: config, weights and the tokenizer's files."""
    tokenizer = BPETokenizer.train([TEXT], vocab_size=40, mode="gpt1", progress=False)
    cfg = GPTConfig.preset("tiny", vocab_size=tokenizer.vocab_size, n_ctx=16, n_embd=8,
                           n_layer=1, n_head=2)
    path = tmp_path / "model"
    GPT(cfg, seed=0).save_pretrained(path)
    tokenizer.save(path)
    return path


def edit_weights(folder, edit):
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_tensor(model_dir, bad):
    edit_weights(model_dir, lambda t: t["h.0.mlp.c_fc.weight"].__setitem__((0, 3), bad))
    with pytest.raises(FormatError, match=r"model\.safetensors: tensor h\.0\.mlp\.c_fc\.weight "
                                          r"holds 1 NaN or infinite"):
        from_pretrained(model_dir)


def test_generate_refuses_a_model_with_nan_weights(model_dir, capsys):
    edit_weights(model_dir, lambda t: t["tokens_embed.weight"].__setitem__((2, 1), np.nan))
    status = main(["generate", "--checkpoint", str(model_dir), "--temperature", "0",
                   "--prompt", "the", "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "tokens_embed.weight" in err and "Traceback" not in err
    assert out == ""  # no garbage printed


@pytest.mark.parametrize("key, value", [
    ("layer_norm_epsilon", "abc"), ("layer_norm_epsilon", -10), ("layer_norm_epsilon", np.nan),
    ("layer_norm_epsilon", 0), ("layer_norm_epsilon", None), ("initializer_range", -1),
    ("initializer_range", np.inf), ("embd_pdrop", "0.1"), ("attn_pdrop", np.nan),
    ("resid_pdrop", True), ("n_layer", True), ("n_layer", 1.0), ("n_head", "2"),
    ("tie_word_embeddings", "false"), ("tie_word_embeddings", 0),
])  # fmt: skip
def test_config_values_are_typed_and_ranged(model_dir, key, value):
    edit_config(model_dir, **{key: value})  # json writes NaN and Infinity, as transformers does
    with pytest.raises(FormatError, match=rf"config\.json: .*{key}") as caught:
        from_pretrained(model_dir)
    assert "UFuncTypeError" not in str(caught.value)


def test_an_untied_head_is_refused(model_dir):
    """transformers saves an untied OpenAIGPTLMHeadModel with its own lm_head.weight."""
    edit_config(model_dir, tie_word_embeddings=False)
    edit_weights(model_dir, lambda t: t.update(
        {"lm_head.weight": t["tokens_embed.weight"] + np.float32(0.5)}))
    with pytest.raises(FormatError, match=r"model\.safetensors: lm_head\.weight differs from "
                                          r"tokens_embed\.weight"):
        from_pretrained(model_dir)


def test_an_untied_config_without_its_head_is_refused(model_dir):
    edit_config(model_dir, tie_word_embeddings=False)
    with pytest.raises(FormatError, match=r"tie_word_embeddings: false but there is no "
                                          r"lm_head\.weight"):
        from_pretrained(model_dir)


@pytest.mark.parametrize("tied", [True, False])
def test_a_head_equal_to_the_embedding_loads(model_dir, tied):
    before = from_pretrained(model_dir)
    edit_config(model_dir, tie_word_embeddings=tied)
    edit_weights(model_dir, lambda t: t.update({"lm_head.weight": t["tokens_embed.weight"]}))
    after = from_pretrained(model_dir)
    ids = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(after.forward(ids), before.forward(ids))
