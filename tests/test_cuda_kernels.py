"""What only the fused CuPy kernels (minigpt1/fast/cuda_kernels.py) promise, beyond equality.

tests/test_fast_paths.py compares every kernel with the plain function it replaces; here are
the kernels' own contracts: the causal softmax works in place, never reads a masked score,
and refuses shapes it cannot handle.
"""

import importlib

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.layers.attention import causal_mask, causal_softmax

pytestmark = pytest.mark.gpu

DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def ck():
    if not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs these on one)")
    return importlib.import_module("minigpt1.fast.cuda_kernels")


def gpu(a):
    return backend.cupy.asarray(a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 2, 4, 9), (1, 1, 3, 3000)],
                         ids=["square", "new-tokens-after-past", "long-rows"])
def test_causal_softmax_in_place_never_reads_a_masked_score(ck, dtype, shape):
    scores = np.random.default_rng(7).uniform(-80.0, 80.0, shape).astype(dtype)
    probs = causal_softmax.plain(scores)
    mask = causal_mask(*shape[-2:], np)
    scores[..., ~mask] = np.nan  # the kernel must never read these
    scores_gpu = gpu(scores)
    assert ck.causal_softmax(scores_gpu) is scores_gpu  # in place
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(backend.cupy.asnumpy(scores_gpu), probs, **tol)
    assert (backend.cupy.asnumpy(scores_gpu)[..., ~mask] == 0.0).all()  # exactly 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_causal_softmax_row_that_sees_only_the_first_key_is_exactly_one(ck, dtype):
    scores = np.random.default_rng(3).uniform(-80.0, 80.0, (2, 2, 6, 6)).astype(dtype)
    probs = backend.cupy.asnumpy(ck.causal_softmax(gpu(scores)))
    assert (probs[:, :, 0, 0] == 1.0).all()
    assert (probs[:, :, 0, 1:] == 0.0).all()


def test_causal_softmax_refuses_more_queries_than_keys(ck):
    with pytest.raises(ValueError, match="Tq <= Tk"):
        ck.causal_softmax(backend.cupy.zeros((1, 1, 3, 2), dtype=np.float32))
