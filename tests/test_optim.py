"""AdamW against values computed by hand, GPT-1's schedules at their key points, clipping.

The AdamW tests run twice: with the plain update alone, and with the fast paths of
minigpt1/fast/ (what training runs).
"""

import math

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.fast.adamw import SLICE
from minigpt1.training.optim import AdamW, clip_grad_norm, warmup_cosine, warmup_linear


@pytest.fixture(params=["plain", "fast"])
def paths(request, monkeypatch):
    """"plain": no fast path is registered, adamw_update runs its own body; "fast": as usual."""
    if request.param == "plain":
        monkeypatch.setattr(backend, "FAST_PATHS", {})
    return request.param


def test_adamw_first_step_by_hand(paths):
    # At t = 1 the bias corrections make m_hat = g and v_hat = g^2, so the Adam part of the
    # step is lr * g / (|g| + eps) ~ lr * sign(g); the decay subtracts lr * wd * p first.
    lr, wd, eps = 0.1, 0.5, 1e-8
    params = {"w": np.array([[1.0, -2.0]]), "b": np.array([3.0])}
    grads = {"w": np.array([[0.5, -4.0]]), "b": np.array([2.0])}
    opt = AdamW(params, lr=lr, weight_decay=wd, eps=eps)
    opt.step(grads)
    w_expected = np.array([[1.0, -2.0]]) * (1 - lr * wd) - lr * np.array([[0.5, -4.0]]) / (
        np.array([[0.5, 4.0]]) + eps
    )
    b_expected = 3.0 - lr * 2.0 / (2.0 + eps)  # a vector: no decay
    assert np.allclose(params["w"], w_expected, rtol=0, atol=1e-12)
    assert np.allclose(params["b"], b_expected, rtol=0, atol=1e-12)


def test_adamw_second_step_by_hand(paths):
    b1, b2, lr, eps = 0.9, 0.999, 0.01, 1e-8
    g1, g2 = 1.0, -3.0
    params = {"b": np.array([0.0])}
    opt = AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0)
    opt.step({"b": np.array([g1])})
    opt.step({"b": np.array([g2])})
    p = 0.0
    m = v = 0.0
    for t, g in ((1, g1), (2, g2)):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    assert params["b"][0] == pytest.approx(p, abs=1e-15)
    state = opt.state_dict()
    assert state["step"] == 2 and state["m.b"][0] == pytest.approx(m)


def test_adamw_matches_the_formulas(paths):
    # a matrix spanning two slices of the fast path and part of a third, in float64
    rng = np.random.default_rng(0)
    lr, (b1, b2), eps, wd = 1e-2, (0.9, 0.999), 1e-8, 0.1
    shape = (3, (2 * SLICE + 123) // 3)
    p = rng.standard_normal(shape)
    params = {"w": p.copy()}
    opt = AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    m = v = np.zeros(shape)
    for t in (1, 2, 3):
        g = rng.standard_normal(shape)
        opt.step({"w": g})
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p * (1 - lr * wd) - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    assert np.allclose(params["w"], p, rtol=1e-12, atol=1e-15)
    assert np.allclose(opt.m["w"], m, rtol=1e-12) and np.allclose(opt.v["w"], v, rtol=1e-12)


def test_adamw_refuses_a_parameter_it_cannot_update_in_place(paths):
    params = {"w": np.ones((4, 3)).T}  # a transposed view: not contiguous
    with pytest.raises(ValueError, match="w must be a contiguous array"):
        AdamW(params).step({"w": np.ones((3, 4))})


def test_weight_decay_touches_matrices_only(paths):
    params = {
        "h.0.mlp.c_fc.weight": np.ones((2, 3)),
        "tokens_embed.weight": np.ones((4, 2)),
        "h.0.mlp.c_fc.bias": np.ones(3),
        "h.0.ln_1.weight": np.ones(2),
    }
    zero_grads = {name: np.zeros_like(p) for name, p in params.items()}
    AdamW(params, lr=0.1, weight_decay=0.5).step(zero_grads)  # with g = 0 only the decay acts
    assert np.allclose(params["h.0.mlp.c_fc.weight"], 0.95)
    assert np.allclose(params["tokens_embed.weight"], 0.95)
    assert np.all(params["h.0.mlp.c_fc.bias"] == 1.0)
    assert np.all(params["h.0.ln_1.weight"] == 1.0)


def test_state_round_trip(paths):
    params = {"w": np.ones((2, 2))}
    opt = AdamW(params)
    opt.step({"w": np.full((2, 2), 0.3)})
    params2 = {"w": params["w"].copy()}
    opt2 = AdamW(params2)
    opt2.load_state_dict({k: np.asarray(v) for k, v in opt.state_dict().items()})
    g = {"w": np.full((2, 2), -0.7)}
    opt.step(g)
    opt2.step(g)
    assert np.array_equal(params["w"], params2["w"])
    with pytest.raises(ValueError, match="m.w"):
        opt2.load_state_dict({"step": 1})


def test_warmup_cosine_key_points():
    kw = dict(max_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert warmup_cosine(0, **kw) == 0.0  # the first update has lr 0, as in GPT-1
    assert warmup_cosine(5, **kw) == pytest.approx(0.5)
    assert warmup_cosine(10, **kw) == pytest.approx(1.0)  # end of warm-up: the peak
    assert warmup_cosine(60, **kw) == pytest.approx(0.55)  # half way: (max + min) / 2
    assert warmup_cosine(110, **kw) == pytest.approx(0.1)  # the end
    assert warmup_cosine(500, **kw) == pytest.approx(0.1)


def test_warmup_linear_key_points():
    kw = dict(max_lr=2.0, warmup_steps=4, total_steps=24)
    assert warmup_linear(0, **kw) == 0.0
    assert warmup_linear(4, **kw) == pytest.approx(2.0)
    assert warmup_linear(14, **kw) == pytest.approx(1.0)
    assert warmup_linear(24, **kw) == 0.0


def test_clip_grad_norm():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}  # global norm 5
    assert clip_grad_norm(grads, max_norm=1.0) == pytest.approx(5.0)
    assert np.sqrt(grads["a"] ** 2 + grads["b"][0] ** 2) == pytest.approx(1.0, rel=1e-5)
    small = {"a": np.array([0.3])}
    clip_grad_norm(small, max_norm=1.0)
    assert small["a"][0] == 0.3  # under the threshold: untouched
