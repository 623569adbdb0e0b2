"""Local HuggingFace directories without PyTorch: round trip, prefixes, the layouts and dtypes
transformers writes, bad directories; and which checkpoint of a run loads and exports."""

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minigpt1 import GPT, GPTConfig, from_pretrained
from minigpt1.errors import FormatError
from minigpt1.jobs.run_folder import export_run, load_model
from minigpt1.model.huggingface import load_safetensors
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training.checkpoint import save_checkpoint
from minigpt1.training.optim import AdamW

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


def test_transformers_double_heads_layout_loads(saved, capsys):
    """transformers 5 saves OpenAIGPTDoubleHeadsModel with the tied matrix once, as
    lm_head.weight (no tokens_embed.weight), beside its multiple-choice head."""
    model, path = saved
    tensors = {f"transformer.{k}": v for k, v in load_file(path / "model.safetensors").items()}
    tensors["lm_head.weight"] = tensors.pop("transformer.tokens_embed.weight")
    tensors["multiple_choice_head.summary.weight"] = np.ones((1, 32), dtype=np.float32)
    tensors["multiple_choice_head.summary.bias"] = np.ones(1, dtype=np.float32)
    save_file(tensors, str(path / "model.safetensors"))
    loaded = from_pretrained(path)
    ids = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(loaded.forward(ids), model.forward(ids))
    note = capsys.readouterr().err
    assert note.startswith("note: ") and note.count("\n") == 1
    assert "left out multiple_choice_head.summary.bias, multiple_choice_head.summary.weight" in note


def test_another_head_is_still_refused(saved):
    _, path = saved
    tensors = load_file(path / "model.safetensors")
    tensors["score.weight"] = np.ones((3, 32), dtype=np.float32)  # ForSequenceClassification
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(FormatError, match=r"unexpected tensor\(s\) \['score.weight'\]"):
        from_pretrained(path)


def write_safetensors(path, tensors, data_size=None):
    """A .safetensors file by hand: {name: (dtype, shape, raw bytes or [begin, end])};
    raw bytes are laid back to back, offsets are written as given (data_size bytes of
    zeros then follow the header)."""
    header, chunks = {}, []
    for name, (dtype, shape, data) in tensors.items():
        if isinstance(data, bytes):
            begin = sum(map(len, chunks))
            chunks.append(data)
            data = [begin, begin + len(data)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": data}
    text = json.dumps(header).encode()
    body = b"".join(chunks) if data_size is None else bytes(data_size)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def test_half_and_double_precision_tensors_become_float32(tmp_path):
    # bfloat16 is the top half of a float32: 0x3F80 -> 0x3F800000 = 1.0, 0xC000 -> -2.0,
    # 0x3E20 -> 0.15625, 0x4049 -> 3.140625
    write_safetensors(tmp_path / "x.safetensors", {
        "bf16": ("BF16", [2, 2], struct.pack("<4H", 0x3F80, 0xC000, 0x3E20, 0x4049)),
        "f16": ("F16", [3], np.array([0.5, -1e-3, 6e4], dtype="<f2").tobytes()),
        "f64": ("F64", [1], np.array([1 / 3], dtype="<f8").tobytes()),
    })  # fmt: skip
    tensors = load_safetensors(tmp_path / "x.safetensors")
    assert {value.dtype for value in tensors.values()} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(tensors["bf16"], [[1.0, -2.0], [0.15625, 3.140625]])
    np.testing.assert_array_equal(tensors["f16"], np.array([0.5, -1e-3, 6e4], dtype=np.float16))
    np.testing.assert_array_equal(tensors["f64"], np.float32(1 / 3))
    tensors["bf16"] += 1  # writable: training updates weights in place


@pytest.mark.parametrize("tensors, data_size, message", [
    ({"a": ("I64", [1], b"\0" * 8)}, None, "tensor a is I64, expected floating point"),
    ({"a": ("F32", [3], b"\0" * 8)}, None,
     r"tensor a of shape \[3\] in F32 cannot fill bytes 0 to 8"),
    ({"a": ("F32", [2], [0, 8]), "b": ("F32", [1], [12, 16])}, 16,
     "tensor b starts at byte 12 of the data, expected 8"),
    ({"a": ("F32", [2], [0, 8]), "b": ("F32", [2], [4, 12])}, 12,
     "tensor b starts at byte 4 of the data, expected 8"),
    ({"a": ("F32", [2], [0, 8])}, 12, "the tensors end at byte 8 of the data, the file at 12"),
    ({"a": ("F32", [2], [0, 8])}, 4, "the tensors end at byte 8 of the data, the file at 4"),
])  # fmt: skip
def test_safetensors_entries_are_checked(tmp_path, tensors, data_size, message):
    """Each tensor floating point and sized for its shape; the tensors one after the other,
    without gap or overlap, to the end of the file (as the safetensors library demands)."""
    path = tmp_path / "x.safetensors"
    write_safetensors(path, tensors, data_size)
    with pytest.raises(FormatError, match=rf"x\.safetensors: .*{message}"):
        load_safetensors(path)


@pytest.fixture
def run_without_best(tmp_path):
    """A run folder saved twice, never evaluated: checkpoints/ holds a last and no best."""
    tokenizer = BPETokenizer.train(["the cat sat on the mat"] * 3, 40, progress=False)
    run = tmp_path / "run"
    tokenizer.save(run / "tokenizer")
    cfg = GPTConfig(vocab_size=40, n_ctx=16, n_embd=32, n_layer=2, n_head=2)
    for step in (1, 2):
        model = GPT(cfg, seed=step)
        save_checkpoint(run, step, model.params, AdamW(model.params).state_dict(),
                        {"config": cfg.to_dict()})
    return run, cfg


def test_best_falls_back_to_last_until_a_run_has_a_best(run_without_best, capsys):
    run, cfg = run_without_best
    ids = np.array([[1, 2, 3]])
    last = GPT(cfg, seed=2).forward(ids)
    model, _ = load_model(run, "best")
    np.testing.assert_array_equal(model.forward(ids), last)
    assert "has no best checkpoint yet" in capsys.readouterr().err
    out = export_run(run, run.parent / "export")  # export's default, "best"
    np.testing.assert_array_equal(from_pretrained(out).forward(ids), last)
    assert "has no best checkpoint yet" in capsys.readouterr().err
    # evaluated once (step 3), then saved again (step 4): best is step 3, last step 4
    for step, val_loss in ((3, 1.0), (4, None)):
        model = GPT(cfg, seed=step)
        save_checkpoint(run, step, model.params, AdamW(model.params).state_dict(),
                        {"config": cfg.to_dict()}, val_loss=val_loss)
    np.testing.assert_array_equal(load_model(run, "best")[0].forward(ids),
                                  GPT(cfg, seed=3).forward(ids))
    np.testing.assert_array_equal(load_model(run, "last")[0].forward(ids),
                                  GPT(cfg, seed=4).forward(ids))
    assert "has no best" not in capsys.readouterr().err
