"""Local HuggingFace directories without PyTorch: round trip, prefixes, and bad directories."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minigpt1 import GPT, GPTConfig, from_pretrained

CFG = GPTConfig(vocab_size=50, n_ctx=16, n_embd=32, n_layer=2, n_head=2)


@pytest.fixture
def saved(tmp_path):
    model = GPT(CFG, seed=4)
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_round_trip(saved):
    model, path = saved
    loaded = from_pretrained(path)
    assert loaded.cfg == CFG
    for name, p in model.params.items():
        assert np.array_equal(loaded.params[name], p), name
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "openai-gpt" and config["n_positions"] == 16


def test_prefixed_keys_and_tied_head_load(saved):
    model, path = saved
    tensors = {f"transformer.{k}": v for k, v in load_file(path / "model.safetensors").items()}
    tensors["lm_head.weight"] = tensors["transformer.tokens_embed.weight"]
    tensors["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), dtype=np.float32))
    save_file(tensors, str(path / "model.safetensors"))
    loaded = from_pretrained(path, dtype="float64")
    assert loaded.params["h.1.mlp.c_fc.weight"].dtype == np.float64
    assert np.allclose(loaded.params["h.1.mlp.c_fc.weight"], model.params["h.1.mlp.c_fc.weight"])


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        from_pretrained(tmp_path / "nope")


def test_missing_config(saved):
    _, path = saved
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="model config not found"):
        from_pretrained(path)


def test_pickle_weights_are_refused(saved):
    _, path = saved
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pickle, which minigpt1 never opens"):
        from_pretrained(path)


def test_mis_shaped_tensor(saved):
    _, path = saved
    tensors = load_file(path / "model.safetensors")
    tensors["h.1.attn.c_proj.weight"] = np.zeros((32, 31), dtype=np.float32)
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"h.1.attn.c_proj.weight has shape \(32, 31\), expected"):
        from_pretrained(path)


def test_missing_tensor(saved):
    _, path = saved
    tensors = load_file(path / "model.safetensors")
    del tensors["positions_embed.weight"]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing, e.g. positions_embed.weight \(16, 32\)"):
        from_pretrained(path)


def test_corrupt_files(saved):
    _, path = saved
    (path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        from_pretrained(path)
    (path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        from_pretrained(path)
