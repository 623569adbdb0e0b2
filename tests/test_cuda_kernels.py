"""The fused CuPy kernels (minigpt1/cuda_kernels.py) against the NumPy code they replace.

Each test builds its inputs with NumPy, runs the NumPy reference on them and the kernel on GPU
copies of the same arrays, and compares: float32 within rtol 1e-5 / atol 1e-6 unless a comment
says why not, float64 within 1e-12.
"""

import importlib
import math

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.layers import gelu_backward, gelu_forward, layernorm_backward, layernorm_forward
from minigpt1.training.optim import AdamW, decays

pytestmark = pytest.mark.gpu

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


@pytest.fixture(scope="module")
def ck():
    if not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs these on one)")
    return importlib.import_module("minigpt1.fast.cuda_kernels")


def gpu(a):
    return backend.cupy.asarray(a)


def assert_close(got, want, dtype, **tol):
    """got: a CuPy array, want: the NumPy reference; same shape and dtype (strict)."""
    tol = {**TOL[dtype], **tol} if dtype is np.float32 else TOL[dtype]
    np.testing.assert_allclose(backend.cupy.asnumpy(got), want, strict=True, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_matches_numpy(ck, dtype):
    rng = np.random.default_rng(0)
    x = (2 * rng.standard_normal((3, 5, 767))).astype(dtype)
    x.flat[:7] = [-8.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 8.0]
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, cache = gelu_forward(x)
    dx = gelu_backward(dy, cache)

    y_gpu, tanh_u_gpu = ck.gelu_forward(gpu(x))
    # float32: CUDA's tanhf is within 2 ulp of NumPy's; where tanh(u) ~ -1, 1 + t and 1 - t^2
    # turn that into absolute errors ~ |x| 1e-7 in y and ~ |x|^3 1e-7 in dx (|x| <= 8 here)
    assert_close(y_gpu, y, dtype, atol=5e-6)
    assert_close(tanh_u_gpu, cache.tanh_u, dtype)
    # the backward from the reference's tanh(u): forward differences do not leak into it
    dx_gpu = ck.gelu_backward(gpu(dy), gpu(x), gpu(cache.tanh_u))
    assert_close(dx_gpu, dx, dtype, atol=5e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [1, 3, 767, 3072, 5000])
def test_layernorm_matches_numpy(ck, dtype, C):
    rng = np.random.default_rng(C)
    x = (3 + 2 * rng.standard_normal((4, 5, C))).astype(dtype)  # off-centre: mu matters
    weight = (1 + 0.1 * rng.standard_normal(C)).astype(dtype)
    bias = (0.1 * rng.standard_normal(C)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, cache = layernorm_forward(x, weight, bias, 1e-5)
    dx, dweight, dbias = layernorm_backward(dy, cache)

    y_gpu, xhat_gpu, rstd_gpu = ck.layernorm_forward(gpu(x), gpu(weight), gpu(bias), 1e-5)
    assert_close(y_gpu, y, dtype)
    assert_close(xhat_gpu, cache.xhat, dtype)
    assert_close(rstd_gpu, cache.rstd, dtype)  # (4, 5, 1), like the NumPy version
    # the backward from the reference's cache: forward differences do not leak into it
    grads = ck.layernorm_backward(gpu(dy), gpu(cache.xhat), gpu(cache.rstd), gpu(weight))
    for got, want in zip(grads, (dx, dweight, dbias), strict=True):
        assert_close(got, want, dtype)


def reference_causal_softmax(scores):
    """NumPy softmax over the keys a query may see; (probs, the (Tq, Tk) mask)."""
    Tq, Tk = scores.shape[-2:]
    mask = np.tril(np.ones((Tq, Tk), dtype=bool), k=Tk - Tq)  # query i sees keys 0..Tk-Tq+i
    s = np.where(mask, scores, -np.inf)
    s -= s.max(axis=-1, keepdims=True)
    probs = np.exp(s)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["unit", "large"])
@pytest.mark.parametrize(
    "shape",
    [(2, 3, 5, 5), (2, 2, 1, 7), (1, 2, 4, 9), (1, 1, 3, 3000), (3, 1, 1, 1)],
    ids=["square", "one-new-token", "new-tokens-after-past", "long-rows", "one-key"],
)
def test_causal_softmax_matches_numpy(ck, dtype, scale, shape):
    rng = np.random.default_rng(7)
    if scale == "unit":
        scores = rng.standard_normal(shape)
    else:  # exp(80) overflows float32: only the max-subtracted form survives
        scores = rng.uniform(-80.0, 80.0, shape)
    scores = scores.astype(dtype)
    probs, mask = reference_causal_softmax(scores)
    scores[..., ~mask] = np.nan  # the kernel must never read a masked score

    scores_gpu = gpu(scores)
    probs_gpu = ck.causal_softmax(scores_gpu)
    assert probs_gpu is scores_gpu  # in place
    assert_close(probs_gpu, probs, dtype)
    assert (backend.cupy.asnumpy(probs_gpu)[..., ~mask] == 0.0).all()  # exactly 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_causal_softmax_row_that_sees_only_the_first_key_is_exactly_one(ck, dtype):
    scores = np.random.default_rng(3).uniform(-80.0, 80.0, (2, 2, 6, 6)).astype(dtype)
    probs = backend.cupy.asnumpy(ck.causal_softmax(gpu(scores)))
    assert (probs[:, :, 0, 0] == 1.0).all()
    assert (probs[:, :, 0, 1:] == 0.0).all()


def test_causal_softmax_refuses_more_queries_than_keys(ck):
    with pytest.raises(ValueError, match="Tq <= Tk"):
        ck.causal_softmax(backend.cupy.zeros((1, 1, 3, 2), dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(37, 129), (1001,)], ids=["matrix-decays", "vector-no-decay"])
def test_adamw_update_matches_the_optimizer(ck, dtype, shape):
    rng = np.random.default_rng(1)
    p = (0.02 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    m = (0.5 * rng.standard_normal(shape)).astype(dtype)
    v = (0.01 + rng.random(shape)).astype(dtype)
    g.flat[:5], v.flat[:5] = 0.0, 0.0  # sqrt(v) = 0: eps alone sets these steps
    lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.1

    opt = AdamW({"w": p.copy()}, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    opt.m["w"][...], opt.v["w"][...] = m, v
    opt.t = 9  # a state in mid-training: this is step 10
    opt.step({"w": g})

    t = opt.t
    bias1, bias2 = 1.0 - b1**t, 1.0 - b2**t
    decay = 1.0 - lr * wd if decays(p) else 1.0
    step_size, eps_hat = lr * math.sqrt(bias2) / bias1, eps * math.sqrt(bias2)
    p_gpu, m_gpu, v_gpu = gpu(p), gpu(m), gpu(v)
    ck.adamw_update(p_gpu, gpu(g), m_gpu, v_gpu, b1, b2, decay, step_size, eps_hat)
    assert_close(p_gpu, opt.params["w"], dtype)
    assert_close(m_gpu, opt.m["w"], dtype)
    assert_close(v_gpu, opt.v["w"], dtype)
