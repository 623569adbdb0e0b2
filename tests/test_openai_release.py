"""The 2018 release format (params_shapes.json + params_0.npy ... params_9.npy + the two BPE
files): a small model written in it loads as the same model, through from_pretrained and
load_model (what --checkpoint uses), with the logits transformers gives for the same weights;
shapes that do not match are a FormatError naming params_shapes.json.

The writer below follows the release's layout as GPT1_REFERENCE.md section 7 describes it, on
its own: positions, tokens, then per block the 12 arrays in the original's order, the block
weights as (1, in, out) convolution kernels, all glued into one flat array cut into 10 shards
that ignore the arrays' boundaries.
"""

import json
import os
import shutil

import numpy as np
import pytest

import minigpt1
from minigpt1 import GPT, GPTConfig, backend, parameter_count
from minigpt1.errors import FormatError
from minigpt1.jobs.run_folder import load_model
from minigpt1.tokenizer.bpe import BPETokenizer
from tests.conftest import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directories only, never the hub

TEXT = "The quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs.\n" * 8
HELD_OUT = "A lazy fox? The DOG runs... over 3 brown dogs, naïvely!"
# a block's arrays, in the release's order: h{i}/attn/c_attn/w, .../b, attn/c_proj/w, /b,
# ln_1/g, ln_1/b, mlp/c_fc/w, /b, mlp/c_proj/w, /b, ln_2/g, ln_2/b
ORIGINAL_ORDER = ["attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                  "attn.c_proj.bias", "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight",
                  "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
                  "ln_2.bias"]


def write_release(folder, model, tokenizer, shards=10):
    """`model` and `tokenizer` as the files of the release's model/ folder."""
    folder.mkdir(parents=True, exist_ok=True)
    p = {name: backend.to_numpy(value) for name, value in model.params.items()}
    arrays = [p["positions_embed.weight"], p["tokens_embed.weight"]]
    for i in range(model.cfg.n_layer):
        for name in ORIGINAL_ORDER:
            value = p[f"h.{i}.{name}"]
            arrays.append(value[None] if value.ndim == 2 else value)  # (1, in, out) kernels
    (folder / "params_shapes.json").write_text(json.dumps([list(a.shape) for a in arrays]))
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float32)
    for n, shard in enumerate(np.array_split(flat, shards)):
        np.save(folder / f"params_{n}.npy", shard)
    tokenizer.save(folder / "bpe")  # then under the release's names
    shutil.copy(folder / "bpe" / "vocab.json", folder / "encoder_bpe_40000.json")
    shutil.copy(folder / "bpe" / "merges.txt", folder / "vocab_40000.bpe")
    shutil.rmtree(folder / "bpe")
    return folder


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train([TEXT], vocab_size=120, mode="gpt1", progress=False)


@pytest.fixture(scope="module")
def model(tokenizer):
    """n_embd 128: two heads of GPT-1's 64 channels. Weights large enough, and biases and
    gains far enough from 0 and 1, that a misplaced array moves every logit."""
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=32, n_embd=128, n_layer=2,
                    n_head=2, initializer_range=0.1)
    model = GPT(cfg, seed=3)
    rng = np.random.default_rng(3)
    for value in model.params.values():
        if value.ndim == 1:
            value += rng.normal(0, 0.3, size=value.shape).astype(np.float32)
    return model


@pytest.fixture
def release(tmp_path, model, tokenizer):
    return write_release(tmp_path / "model", model, tokenizer)


def test_a_release_folder_loads_as_the_same_model(release, model):
    loaded = minigpt1.from_pretrained(release)
    # the shapes give the sizes, the head size of 64 the heads, GPT-1 the rest (dropout, eps)
    assert loaded.cfg == GPTConfig(vocab_size=model.cfg.vocab_size, n_ctx=32, n_embd=128,
                                   n_layer=2, n_head=2)
    assert list(loaded.params) == list(model.params)
    for name, value in model.params.items():
        assert loaded.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[name], value, err_msg=name)


def test_load_model_reads_weights_and_both_bpe_files(release, model, tokenizer):
    loaded, loaded_tokenizer = load_model(release)
    assert loaded_tokenizer.mode == "gpt1"
    ids = tokenizer.encode(HELD_OUT)
    assert loaded_tokenizer.encode(HELD_OUT) == ids and 0 in ids  # ï is unknown: <unk>
    assert loaded_tokenizer.decode(ids) == tokenizer.decode(ids)
    np.testing.assert_array_equal(loaded.forward([ids]), model.forward([ids]))


def test_logits_equal_transformers_on_the_same_weights(release, model, tmp_path):
    """The release folder and a folder transformers saved from the same weights: our logits
    from the one equal transformers' from the other."""
    torch, hf = require("torch"), require("transformers")
    config = hf.OpenAIGPTConfig(vocab_size=model.cfg.vocab_size, n_positions=model.cfg.n_ctx,
                                n_embd=model.cfg.n_embd, n_layer=model.cfg.n_layer,
                                n_head=model.cfg.n_head)
    theirs = hf.OpenAIGPTLMHeadModel(config).eval()
    state = {f"transformer.{k}": torch.from_numpy(v.copy()) for k, v in model.params.items()}
    theirs.load_state_dict(state, strict=False)
    theirs.save_pretrained(tmp_path / "hf")
    theirs = hf.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = np.random.default_rng(0).integers(0, model.cfg.vocab_size, size=(2, model.cfg.n_ctx))
    with torch.no_grad():
        expected = theirs(input_ids=torch.from_numpy(ids)).logits.numpy()
    ours = GPT.from_pretrained(release).forward(ids)
    assert np.abs(ours - expected).max() < 1e-4
    assert np.abs(expected).max() > 1.0  # logits far from uniform: the check means something
    np.testing.assert_array_equal(ours, GPT.from_pretrained(tmp_path / "hf").forward(ids))


def edit_shapes(release, edit):
    path = release / "params_shapes.json"
    shapes = json.loads(path.read_text())
    edit(shapes)
    path.write_text(json.dumps(shapes))


def test_a_shape_that_does_not_fit_is_named(release):
    # h0/mlp/c_fc/w is array 2 + 6: written (1, 128, 512), claimed (1, 512, 128)
    edit_shapes(release, lambda shapes: shapes.__setitem__(8, [1, 512, 128]))
    with pytest.raises(FormatError, match=r"params_shapes\.json: array 8 \(h0/mlp/c_fc/w, our "
                                          r"h\.0\.mlp\.c_fc\.weight\) has shape \(1, 512, 128\), "
                                          r"expected \(1, 128, 512\)"):
        GPT.from_pretrained(release)


def test_shapes_that_hold_more_than_the_shards_are_named(release, model):
    edit_shapes(release, lambda shapes: shapes.__setitem__(0, [33, 128]))  # one more position
    held = parameter_count(model.cfg)
    with pytest.raises(FormatError, match=rf"params_shapes\.json: its shapes hold "
                                          rf"{held + 128:,} values, but .*params_0\.npy "
                                          rf"\.\.\. params_9\.npy hold {held:,}"):
        GPT.from_pretrained(release)


def test_a_missing_last_shard_is_named(release):
    (release / "params_9.npy").unlink()
    with pytest.raises(FormatError, match=r"params_shapes\.json: .* params_8\.npy hold"):
        load_model(release)


@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_a_damaged_shard_is_named(release, damage):
    shard = release / "params_4.npy"
    if damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        np.save(shard, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match=r"params_4\.npy: not a readable \.npy file"):
        GPT.from_pretrained(release)


def test_non_finite_weights_are_refused(release):
    shard = np.load(release / "params_3.npy")
    shard[5] = np.nan
    np.save(release / "params_3.npy", shard)
    with pytest.raises(FormatError, match=r"params_0\.npy \.\.\. params_9\.npy: tensor .* holds "
                                          r"1 NaN"):
        GPT.from_pretrained(release)


def test_without_shards_the_message_says_where_to_get_them(release):
    for shard in release.glob("params_*.npy"):
        shard.unlink()
    with pytest.raises(FileNotFoundError, match="openai/finetune-transformer-lm"):
        GPT.from_pretrained(release)


def test_the_real_gpt1_shapes_describe_the_gpt1_preset(tmp_path):
    """params_shapes.json of the real release, as GPT1_REFERENCE.md lists it: accepted as the
    gpt1 preset (12 heads of 64) and 116,534,784 values, which the one tiny shard lacks."""
    block = [[1, 768, 2304], [2304], [1, 768, 768], [768], [768], [768], [1, 768, 3072],
             [3072], [1, 3072, 768], [768], [768], [768]]
    shapes = [[512, 768], [40478, 768], *block * 12]
    (tmp_path / "params_shapes.json").write_text(json.dumps(shapes))
    np.save(tmp_path / "params_0.npy", np.zeros(10, dtype=np.float32))
    with pytest.raises(FormatError, match=r"its shapes hold 116,534,784 values, but .* hold 10"):
        GPT.from_pretrained(tmp_path)
    assert len(shapes) == 146 and GPTConfig.preset("gpt1").n_head == 768 // 64


@pytest.mark.parametrize("shapes, message", [
    ([[32, 128], [120, 128]], "2 shapes"),
    ([[32, 96], [120, 96], *[[1]] * 12], "not a multiple of GPT-1's head size 64"),
    ({"positions": [32, 128]}, "expected a JSON list of shapes"),
    ([[32, 128], [120, True]], "expected a JSON list of shapes"),
])  # fmt: skip
def test_malformed_shape_lists_are_named(release, shapes, message):
    (release / "params_shapes.json").write_text(json.dumps(shapes))
    with pytest.raises(FormatError, match=rf"params_shapes\.json: .*{message}"):
        GPT.from_pretrained(release)
