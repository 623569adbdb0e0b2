"""The whole model: names and sizes, L1 gradients in float64, bad input, and overfitting."""

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend, parameter_count
from minigpt1.gradcheck import check_sampled, failures
from minigpt1.training.optim import AdamW

# DESIGN.md's table, written out by hand: HuggingFace OpenAIGPTModel's keys for one block
HF_BLOCK_KEYS = [
    "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias",
]  # fmt: skip


def batch(cfg, B=2, T=8, seed=0):
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T))


def test_parameter_names_and_shapes():
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg)
    expected = ["tokens_embed.weight", "positions_embed.weight"]
    expected += [f"h.{i}.{k}" for i in range(cfg.n_layer) for k in HF_BLOCK_KEYS]
    assert list(model.params) == expected
    C = cfg.n_embd
    assert model.params["tokens_embed.weight"].shape == (cfg.vocab_size, C)
    assert model.params["h.3.attn.c_attn.weight"].shape == (C, 3 * C)  # Conv1D layout [in, out]
    assert model.params["h.3.mlp.c_proj.weight"].shape == (4 * C, C)
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_parameter_count():
    # the released GPT-1 checkpoint: 393,216 + 31,087,104 + 12 * 7,087,872
    assert parameter_count(GPTConfig.preset("gpt1")) == 116_534_784
    model = GPT(GPTConfig.preset("tiny"))
    assert parameter_count(model.cfg) == sum(p.size for p in model.params.values())


def test_initialisation():
    model = GPT(GPTConfig.preset("tiny"), seed=1)
    w = model.params["h.0.mlp.c_fc.weight"]
    assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
    assert np.all(model.params["h.0.ln_1.weight"] == 1)
    assert np.all(model.params["h.0.ln_1.bias"] == 0)
    same = GPT(GPTConfig.preset("tiny"), seed=1, dtype="float64")
    assert np.allclose(same.params["h.0.mlp.c_fc.weight"], w, atol=1e-9)  # one draw, two dtypes


def gradcheck_model(device, train):
    """L1's gradients against finite differences at sampled entries of every tensor."""
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, seed=0, device=device, dtype="float64")
    # move parameters away from their tidy initial values so no bug hides behind 0 or 1
    rng = np.random.default_rng(1)
    for name, p in model.params.items():
        noise = backend.to_device(rng.normal(0, 0.1, size=p.shape), device, "float64")
        p += noise if not name.endswith("weight") or p.ndim == 1 else noise * 0.2
    ids = batch(cfg, B=2, T=7)
    mask = np.ones_like(ids)
    mask[1, 2] = 0  # one ignored target

    def loss():  # a fresh generator with a fixed seed: identical dropout masks at every call
        return model.lm_loss_and_grads(ids, mask, train, backend.device_rng(device, 5))[0]

    _, grads = model.lm_loss_and_grads(ids, mask, train, backend.device_rng(device, 5))
    errors = check_sampled(loss, model.params, grads, samples=6)
    bad = failures(errors, 1e-6)
    assert not bad, "model gradient check failed:\n" + bad


def test_model_gradients_eval(device):
    gradcheck_model(device, train=False)


def test_model_gradients_with_dropout(device):
    gradcheck_model(device, train=True)


def test_tied_embedding_hears_both_ends():
    # a token that never appears in the input still gets gradient through the output softmax
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, dtype="float64")
    ids = np.array([[1, 2, 3, 1]])
    _, grads = model.lm_loss_and_grads(ids)
    dwte = grads["tokens_embed.weight"]
    assert np.abs(dwte[100]).sum() > 0  # token 100: output side only
    logits = model.forward(ids[:, :-1])
    assert logits.shape == (1, 3, cfg.vocab_size)


def test_loss_at_initialisation_is_log_vocab():
    cfg = GPTConfig.preset("tiny")
    loss, _ = GPT(cfg).lm_loss_and_grads(batch(cfg, B=4, T=32))
    assert abs(loss - np.log(cfg.vocab_size)) < 0.05  # a fresh model guesses uniformly


def test_eval_is_deterministic_and_train_is_not():
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg)
    ids = batch(cfg)
    assert np.array_equal(model.forward(ids), model.forward(ids))
    a = model.forward(ids, train=True, rng=np.random.default_rng(0))
    b = model.forward(ids, train=True, rng=np.random.default_rng(1))
    c = model.forward(ids, train=True, rng=np.random.default_rng(0))
    assert not np.allclose(a, b) and np.array_equal(a, c)


def test_overfit_one_batch():
    """The tiny model memorises one fixed batch: L1 falls below 0.05 (float32, CPU)."""
    cfg = GPTConfig.preset("tiny", embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    model = GPT(cfg, seed=0)
    ids = batch(cfg, B=4, T=32, seed=3)
    opt = AdamW(model.params, lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(150):
        loss, grads = model.lm_loss_and_grads(ids, train=True)
        opt.step(grads)
        losses.append(loss)
        if loss < 0.05:
            break
    assert losses[-1] < 0.05, f"L1 only reached {losses[-1]:.3f} after {len(losses)} steps"


@pytest.mark.parametrize(
    "ids, message",
    [
        (np.array([[1, 4096]]), "token id 4096 is outside 0..4095"),
        (np.array([[-1, 2]]), "token id -1 is outside"),
        (np.zeros((1, 129), dtype=int), r"sequence length 129 is outside 1..128 \(n_ctx=128\)"),
        (np.zeros(5, dtype=int), r"shape \(B, T\)"),
        (np.zeros((1, 4)), "must be integers"),
    ],
)
def test_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        GPT(GPTConfig.preset("tiny")).forward(ids)


def test_bad_config():
    with pytest.raises(ValueError, match=r"n_embd \(100\) must be divisible by n_head \(3\)"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        GPTConfig.preset("huge")
    with pytest.raises(ValueError, match="embd_pdrop"):
        GPTConfig(embd_pdrop=1.5)


def test_bad_params():
    cfg = GPTConfig.preset("tiny")
    params = dict(GPT(cfg).params)
    params["h.1.ln_2.bias"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"h.1.ln_2.bias has shape \(7,\), expected \(128,\)"):
        GPT(cfg, params=params)
    del params["h.1.ln_2.bias"]
    with pytest.raises(ValueError, match=r"missing, e.g. h.1.ln_2.bias \(128,\)"):
        GPT(cfg, params=params)


def test_lm_loss_takes_a_window_of_n_ctx_inputs_plus_one_target():
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, dtype="float64")
    ids = batch(cfg, B=2, T=cfg.n_ctx + 1)
    loss, _ = model.lm_loss_and_grads(ids)
    logits = model.forward(ids[:, :-1])  # (B, n_ctx, V)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()
    assert abs(loss - expected) < 1e-10
    with pytest.raises(ValueError, match="sequence length 130"):
        model.lm_loss_and_grads(batch(cfg, T=cfg.n_ctx + 2))


def test_attention_maps_are_causal_distributions():
    cfg = GPTConfig.preset("tiny")
    maps = GPT(cfg).attention_maps(batch(cfg, B=1, T=10))
    assert len(maps) == cfg.n_layer and maps[0].shape == (1, cfg.n_head, 10, 10)
    for probs in maps:
        assert np.allclose(probs.sum(-1), 1.0, atol=1e-5)
        assert np.all(np.triu(probs[0, 0], k=1) == 0)  # nothing from the future


def arrays_in(tree):
    """Every NumPy array inside nested tuples, lists and NamedTuples (a forward pass's cache)."""
    if isinstance(tree, np.ndarray):
        yield tree
    elif isinstance(tree, tuple | list):
        for item in tree:
            yield from arrays_in(item)


def test_float32_end_to_end():
    # nothing a float32 training step keeps or returns is silently float64: activations,
    # attention probabilities and dropout masks in the caches, every gradient
    cfg = GPTConfig.preset("tiny", n_ctx=160)  # longer than a query block: both attentions
    model = GPT(cfg, seed=0)
    ids = batch(cfg, B=2, T=cfg.n_ctx + 1)
    loss, head, body = model._lm_forward(ids, None, train=True, rng=np.random.default_rng(0))
    floats = [a for a in arrays_in((head, body)) if a.dtype.kind == "f"]
    assert len(floats) > 10 * cfg.n_layer
    assert {a.dtype for a in floats} == {np.dtype(np.float32)}
    assert np.asarray(loss).dtype == np.float32
    _, grads = model.lm_loss_and_grads(ids, train=True, rng=np.random.default_rng(0))
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
