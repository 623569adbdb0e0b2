"""Exercises of lesson 07 (on the GPU), every one checked on the CPU with NumPy alone: a softmax
for any array module, the FLOPs of a training step, the arithmetic intensity of a matrix
product, the bytes AdamW's moment updates move, and a GELU that allocates nothing.

The memory model of the lesson: every element-wise NumPy operation is one pass over memory
that reads each distinct input array once and writes its output once; a Python scalar costs
nothing. The checks compare counts with that model, watch which ufuncs an answer calls through
an array subclass that notes their names, and measure its allocations with `tracemalloc`
(NumPy reports its array allocations to it). Most answers are tried on several sizes, so a
number copied from the lesson's output does not pass.
"""

import inspect
import re
import tracemalloc

import numpy as np

from minigpt1 import backend, parameter_count
from minigpt1.backend import xp_of
from minigpt1.config import GPTConfig
from minigpt1.fast.attention import causal_softmax_in_place
from minigpt1.fast.cross_entropy import shifted_target_log_probs, unshifted_target_log_probs
from minigpt1.fast.gelu import gelu_forward_in_place
from minigpt1.layers import gelu_forward
from minigpt1.layers.attention import causal_softmax
from minigpt1.layers.cross_entropy import target_log_probs
from minigpt1.layers.gelu import GELU_COEF, SQRT_2_OVER_PI
from minigpt1.training.estimate import flops_per_token

from .base import SWITCHED_OFF, Exercise, Mistake

NUMPY_BY_NAME = "calls numpy by name"


def _mentions_numpy(function):
    """True when the function's own source calls numpy by name (not through xp_of)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # no source to read (e.g. compiled or built on the fly)
        return False
    return bool(re.search(r"\b(np|numpy)\.", source))


def _assert_any_array_module(answer):
    assert not _mentions_numpy(answer), (
        f"the values are right, but your function {NUMPY_BY_NAME} (np.exp, np.tanh, ...): on a "
        f"CuPy array that means host memory, a copy or an error. Ask the array for its module "
        f"instead: xp = xp_of(x)")


def _numbers(answer, cases, what):
    """answer(*case) for each case, as floats: the student's counts, one per case."""
    got = []
    for case in cases:
        value = answer(*case)
        assert isinstance(value, (int, float, np.integer, np.floating)), (
            f"{what}{case} returned {type(value).__name__}: return a number")
        got.append(float(value))
    return np.array(got)


def _matches(got, expected):
    return np.allclose(got, expected, rtol=1e-9, atol=0)


# --- 1. A softmax for NumPy and CuPy alike -----------------------------------------------------


def softmax_rows(x):
    """Softmax over the last axis of x (..., V), for a NumPy or a CuPy array alike."""
    xp = xp_of(x)
    exps = xp.exp(x - x.max(axis=-1, keepdims=True))  # (..., V), each <= exp(0) = 1: no overflow
    return exps / exps.sum(axis=-1, keepdims=True)  # (..., V)


def check_softmax_rows(answer):
    rng = np.random.default_rng(11)
    logits = (3.0 * rng.standard_normal((3, 4, 7))).astype(np.float32)  # (B, T, V)
    logits[0, 0] += 200.0  # large logits: exp(200) overflows float32 (its max is about 3e38)
    before = logits.copy()
    try:
        probs = answer(logits)
    except ValueError as error:  # a (B, T) sum does not broadcast against (B, T, V)
        raise AssertionError(
            f"{error}. Reduce with keepdims=True, so each row's max and sum keep a last axis "
            f"of 1 and broadcast against the row") from error
    assert isinstance(probs, np.ndarray) and probs.shape == logits.shape, (
        f"return an array of x's shape {logits.shape}")
    assert np.array_equal(logits, before), "x changed: compute into new arrays, leave x alone"
    assert np.isfinite(probs).all(), (
        "inf or nan where a row holds large logits (about 200 here): exp overflows. Subtract "
        "each row's max before exp; it leaves the softmax unchanged")
    assert np.allclose(probs.sum(axis=-1), 1.0, atol=1e-5), (
        "the rows do not sum to 1: normalise over the last axis (the V logits of one position)")
    shifted = before.astype(np.float64) - before.max(axis=-1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    error = float(np.abs(probs - expected).max())
    assert error < 1e-6, f"max difference from the softmax is {error:.1e} (want < 1e-6)"
    assert probs.dtype == logits.dtype, (
        f"float32 in, {probs.dtype} out: keep x's dtype (a float64 copy doubles every byte moved, "
        f"and GPUs are slow at float64)")
    _assert_any_array_module(answer)


def _softmax_from_the_library(x):
    return causal_softmax(x[..., None, :])[..., 0, :]  # one query sees every key: no mask


def _softmax_without_the_max(x):
    exps = xp_of(x).exp(x)
    return exps / exps.sum(axis=-1, keepdims=True)


def _softmax_over_the_first_axis(x):
    exps = xp_of(x).exp(x - x.max(axis=0, keepdims=True))
    return exps / exps.sum(axis=0, keepdims=True)


def _softmax_without_keepdims(x):
    exps = xp_of(x).exp(x - x.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1)


def _softmax_numpy_by_name(x):
    exps = np.exp(x - x.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)


# --- 2. The matrix-product FLOPs of one training step ------------------------------------------


def _step_flop_parts(cfg, batch):
    """The forward FLOPs of one step in three parts: linear layers, attention's products and
    the LM head; each multiply-add counted as 2 FLOPs."""
    N, T, C = batch * cfg.n_ctx, cfg.n_ctx, cfg.n_embd  # tokens, sequence length, width
    return {"linears": 2 * N * 12 * C * C * cfg.n_layer,  # c_attn 3C^2, c_proj C^2, MLP 8C^2
            "attention": 2 * 2 * batch * T * T * C * cfg.n_layer,  # QK^T and PV, masked half too
            "lm_head": 2 * N * C * cfg.vocab_size}


def training_step_flops(cfg, batch):
    """Matrix-product FLOPs of one training step (forward + backward) on batch x n_ctx tokens."""
    N, T, C = batch * cfg.n_ctx, cfg.n_ctx, cfg.n_embd  # tokens, sequence length, width
    per_layer = 2 * N * 12 * C * C + 2 * 2 * batch * T * T * C  # four linears; QK^T and P V
    forward = cfg.n_layer * per_layer + 2 * N * C * cfg.vocab_size  # and the LM head
    return 3 * forward  # the backward pass: two products for every forward one


STEP_CASES = ((GPTConfig.preset("small"), 8), (GPTConfig.preset("small"), 3),
              (GPTConfig(vocab_size=100, n_ctx=16, n_embd=48, n_layer=3, n_head=4), 5))


def check_training_step_flops(answer):
    got = _numbers(answer, STEP_CASES, "training_step_flops")
    right = [3 * sum(_step_flop_parts(*case).values()) for case in STEP_CASES]
    if _matches(got, right):
        return
    parts = [_step_flop_parts(*case) for case in STEP_CASES]
    wrong = {
        "that is the forward pass only: the backward pass computes two products for every "
        "forward one (the input's gradient and the weight's), so a step is 3 x forward":
            [sum(p.values()) for p in parts],
        "each multiply-add is 2 FLOPs (a multiply and an add)": [r / 2 for r in right],
        "the LM head is missing: logits = h We^T is a (BT, C) x (C, V) product":
            [3 * (p["linears"] + p["attention"]) for p in parts],
        "attention's two products are missing: Q K^T and P V, each (T, hs) x (hs, T) or "
        "(T, T) x (T, hs) for every head": [3 * (p["linears"] + p["lm_head"]) for p in parts],
    }
    for hint, counts in wrong.items():
        assert not _matches(got, counts), hint
    raise AssertionError(
        f"{got[0]:,.0f} FLOPs for the small preset at batch 8 is off by a factor "
        f"{got[0] / right[0]:.3g}. Per layer: the four linears hold 12 C^2 weights, each used "
        f"once per token; attention's two products cost 2 B T^2 C multiply-adds; then the LM "
        f"head, 2 FLOPs per multiply-add, times 3 for the backward pass")


def _flops_from_the_library(cfg, batch):
    return flops_per_token(cfg).training * batch * cfg.n_ctx


def _forward_flops_only(cfg, batch):
    return sum(_step_flop_parts(cfg, batch).values())


def _one_flop_per_multiply_add(cfg, batch):
    return training_step_flops(cfg, batch) // 2


def _flops_without_the_head(cfg, batch):
    parts = _step_flop_parts(cfg, batch)
    return 3 * (parts["linears"] + parts["attention"])


# --- 3. Arithmetic intensity of a matrix product --------------------------------------------------


def matmul_intensity(M, K, N, itemsize=4):
    """FLOPs per byte of (M, K) @ (K, N): 2 M K N FLOPs over reading both and writing (M, N)."""
    flops = 2 * M * K * N  # one multiply and one add per (m, k, n)
    bytes_moved = itemsize * (M * K + K * N + M * N)
    return flops / bytes_moved


INTENSITY_CASES = ((8 * 128, 128, 4 * 128, 4), (3, 5, 7, 8), (64, 768, 3072, 2), (1, 768, 768, 4))


def check_matmul_intensity(answer):
    got = _numbers(answer, INTENSITY_CASES, "matmul_intensity")
    right = [matmul_intensity(*case) for case in INTENSITY_CASES]
    if _matches(got, right):
        return
    wrong = {
        "each multiply-add is 2 FLOPs (a multiply and an add)": [r / 2 for r in right],
        "that is FLOPs per value: divide by bytes, itemsize per value":
            [r * case[3] for r, case in zip(right, INTENSITY_CASES, strict=True)],
        "use itemsize for the bytes of one value (4 for float32, 8 for float64), not a fixed 8":
            [r * case[3] / 8 for r, case in zip(right, INTENSITY_CASES, strict=True)],
        "the output (M, N) must be written to memory too: count it once":
            [2 * M * K * N / (s * (M * K + K * N)) for M, K, N, s in INTENSITY_CASES],
    }
    for hint, values in wrong.items():
        assert not _matches(got, values), hint
    raise AssertionError(
        f"matmul_intensity(1024, 128, 512) = {got[0]:.3f} FLOP/byte is not it. FLOPs: a multiply "
        f"and an add for each (m, k, n). Bytes: each input read once and the output written "
        f"once, itemsize bytes per value")


def _intensity_one_flop(M, K, N, itemsize=4):
    return M * K * N / (itemsize * (M * K + K * N + M * N))


def _intensity_per_value(M, K, N, itemsize=4):
    return 2 * M * K * N / (M * K + K * N + M * N)


def _intensity_in_float64(M, K, N, itemsize=4):
    return 2 * M * K * N / (8 * (M * K + K * N + M * N))


def _intensity_inputs_only(M, K, N, itemsize=4):
    return 2 * M * K * N / (itemsize * (M * K + K * N))


# --- 4. Bytes moved by AdamW's moment updates ----------------------------------------------------

# m *= b1                   read m, write m                          2 arrays
# m += (1.0 - b1) * g       read g, write a temporary t              2
#                           read m and t, write m                    3
# v *= b2                   read v, write v                          2
# v += (1.0 - b2) * g * g   read g, write t; read t and g, write t'  2 + 3
#                           read v and t', write v                   3
MOMENT_ARRAYS = {"m": 2 + 2 + 3, "v": 2 + 2 + 3 + 3}
FUSED_ARRAYS = 5  # one kernel: read m, v, g; write m, v


def adam_moment_bytes(n_params, itemsize=4):
    """Bytes the four textbook lines that update Adam's two moments move, for n_params values."""
    first = 2 + 2 + 3  # m *= b1; (1 - b1) * g into a temporary; m += that temporary
    second = 2 + (2 + 3) + 3  # v *= b2; (1 - b2) * g, then times g: two passes; v += it
    return (first + second) * itemsize * n_params  # arrays touched, each itemsize per value


MOMENT_CASES = ((parameter_count(GPTConfig.preset("small")), 4), (1000, 8), (7, 2))


def check_adam_moment_bytes(answer):
    got = _numbers(answer, MOMENT_CASES, "adam_moment_bytes")
    sizes = np.array([size for _, size in MOMENT_CASES])
    per_value = got / sizes / [n for n, _ in MOMENT_CASES]  # arrays touched per parameter
    right = sum(MOMENT_ARRAYS.values())
    if _matches(per_value, right):
        return
    wrong = {
        "that is the first moment m alone: the second moment v is updated too, with g * g":
            MOMENT_ARRAYS["m"],
        f"{FUSED_ARRAYS} arrays per parameter (read m, v, g, write m, v) is what ONE fused kernel "
        f"would move; NumPy runs every operator as its own pass, through temporaries":
            FUSED_ARRAYS,
        "that counts float32 values, not bytes: multiply by itemsize": right / sizes,
        "use itemsize (4 for float32) for the bytes of one value, not a fixed 8": right * 8 / sizes,
    }
    for hint, arrays in wrong.items():
        assert not _matches(per_value, arrays), hint
    raise AssertionError(
        f"{per_value[0]:.2f} arrays touched per parameter; count the passes line by line. "
        f"`m *= b1` reads and writes m; `(1.0 - b1) * g` reads g and writes a temporary, which "
        f"`m += ...` reads back with m before writing m; in `(1.0 - b2) * g * g` each `*` is a "
        f"pass of its own")


def _moment_bytes_first_only(n_params, itemsize=4):
    return 7 * itemsize * n_params


def _moment_bytes_in_float64(n_params, itemsize=4):
    return 17 * 8 * n_params


def _moment_bytes_fused(n_params, itemsize=4):
    return FUSED_ARRAYS * itemsize * n_params


def _moment_bytes_in_values(n_params, itemsize=4):
    return 17 * n_params


# --- 5. GELU into a buffer, with no temporary arrays ---------------------------------------------


def gelu_into(x, out):
    """GELU of x written into `out` (same shape and dtype), allocating no array at all.

    Nine passes, the formula as it reads (the library's CPU gelu_forward multiplies the
    cube's coefficients out and makes eight), every one of them writing into `out`: the only
    memory touched is x and out. Works for NumPy and CuPy arrays alike.
    """
    xp = xp_of(x)
    xp.multiply(x, x, out=out)  # x^2
    out *= x  # x^3 (two multiplications: x ** 3 would call the slow power function)
    out *= GELU_COEF  # 0.044715 x^3
    out += x  # x + 0.044715 x^3
    out *= SQRT_2_OVER_PI  # u
    xp.tanh(out, out=out)  # tanh(u)
    out += 1.0
    out *= x
    out *= 0.5  # 0.5 x (1 + tanh(u))
    return out


class _UfuncNames(np.ndarray):
    """A NumPy array that notes the name of every ufunc called on it (in `called`)."""

    called = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _UfuncNames.called.append(ufunc.__name__)
        inputs = [a.view(np.ndarray) if isinstance(a, _UfuncNames) else a for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, _UfuncNames) else o
                                  for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0]  # in place: the caller's own array
        return result.view(_UfuncNames) if isinstance(result, np.ndarray) else result


def _ufuncs_called(answer, x):
    _UfuncNames.called = []
    answer(x.view(_UfuncNames), np.empty_like(x).view(_UfuncNames))
    return set(_UfuncNames.called)


def check_gelu_into(answer):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((256, 1024)) * 2.0).astype(np.float32)  # (N, 4C): 1 MiB
    x_before = x.copy()
    out = np.full_like(x, np.nan)
    tracemalloc.start()
    try:
        result = answer(x, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result is out, "return `out` itself (the buffer you wrote into), not a new array"
    assert np.array_equal(x, x_before), "x changed: write into `out` only, never into x"
    expected, _ = gelu_forward(x_before)
    error = float(np.abs(out - expected).max())
    assert error < 1e-5, (
        f"max difference from gelu_forward is {error:.2e} (want < 1e-5): y = 0.5 x (1 + tanh(u)) "
        f"with u = sqrt(2/pi) (x + 0.044715 x^3)")
    assert peak < x.nbytes // 4, (
        f"your function allocated {peak / 2**20:.1f} MiB while x is {x.nbytes / 2**20:.0f} MiB: "
        f"some operation made a temporary array. Use `xp.multiply(a, b, out=out)`, "
        f"`xp.tanh(out, out=out)` and in-place operators (`out *= x`) instead of `a * b`")
    powers = _ufuncs_called(answer, x_before) & {"power", "float_power"}
    assert not powers, (
        f"your function calls {', '.join(sorted(powers))}: x ** 3 runs NumPy's general power "
        f"routine, far slower than two multiplications into out")
    x64 = x_before[:4].astype(np.float64)
    out64 = answer(x64, np.empty_like(x64))
    assert out64.dtype == np.float64 and np.allclose(out64, gelu_forward(x64)[0], atol=1e-12), (
        "in float64 the result should match gelu_forward to about 1e-12")
    _assert_any_array_module(answer)


def _gelu_into_from_the_library(x, out):
    out[...] = gelu_forward(x)[0]
    return out


def _gelu_new_array(x, out):
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)
    return 0.5 * x * (1.0 + xp_of(x).tanh(u))  # right values, but out is never written


def _gelu_into_through_temporaries(x, out):
    out[...] = _gelu_new_array(x, out)  # right values in out, through full-size temporaries
    return out


def _gelu_into_with_power(x, out):
    xp = xp_of(x)
    xp.power(x, 3, out=out)  # x^3 with no temporary, but through the power routine
    out *= GELU_COEF
    out += x
    out *= SQRT_2_OVER_PI
    xp.tanh(out, out=out)
    out += 1.0
    out *= x
    out *= 0.5
    return out


def _gelu_into_numpy_by_name(x, out):
    np.multiply(x, x, out=out)
    out *= x
    out *= GELU_COEF
    out += x
    out *= SQRT_2_OVER_PI
    np.tanh(out, out=out)
    out += 1.0
    out *= x
    out *= 0.5
    return out


def _library_gelus():
    """The library's GELU forwards: the plain one (through its dispatcher), the CPU in-place
    fast path and, where CuPy is installed, the fused CUDA kernel's."""
    found = (gelu_forward, gelu_forward_in_place)
    if backend.cupy is not None:
        from minigpt1.fast import cuda_kernels

        found += (cuda_kernels.gelu_forward,)
    return found


EXERCISES = {
    "gpu_softmax_rows": Exercise(
        solution=softmax_rows, check=check_softmax_rows,
        library=(causal_softmax, causal_softmax_in_place, target_log_probs,
                 shifted_target_log_probs, unshifted_target_log_probs),
        mistakes=(Mistake(_softmax_from_the_library, SWITCHED_OFF),
                  Mistake(_softmax_without_the_max, "Subtract each row's max before exp"),
                  Mistake(_softmax_over_the_first_axis, "normalise over the last axis"),
                  Mistake(_softmax_without_keepdims, "keepdims=True"),
                  Mistake(_softmax_numpy_by_name, NUMPY_BY_NAME))),
    "gpu_training_step_flops": Exercise(
        solution=training_step_flops, check=check_training_step_flops, library=(flops_per_token,),
        mistakes=(Mistake(_flops_from_the_library, SWITCHED_OFF),
                  Mistake(_forward_flops_only, "that is the forward pass only"),
                  Mistake(_one_flop_per_multiply_add, "each multiply-add is 2 FLOPs"),
                  Mistake(_flops_without_the_head, "the LM head is missing"))),
    "gpu_matmul_intensity": Exercise(
        solution=matmul_intensity, check=check_matmul_intensity,
        mistakes=(Mistake(_intensity_one_flop, "each multiply-add is 2 FLOPs"),
                  Mistake(_intensity_per_value, "divide by bytes"),
                  Mistake(_intensity_in_float64, "not a fixed 8"),
                  Mistake(_intensity_inputs_only, "the output (M, N) must be written"))),
    "gpu_adam_moment_bytes": Exercise(
        solution=adam_moment_bytes, check=check_adam_moment_bytes,
        mistakes=(Mistake(_moment_bytes_first_only, "the second moment v"),
                  Mistake(_moment_bytes_fused, "ONE fused kernel"),
                  Mistake(_moment_bytes_in_float64, "not a fixed 8"),
                  Mistake(_moment_bytes_in_values, "counts float32 values, not bytes"))),
    "gpu_gelu_into": Exercise(
        solution=gelu_into, check=check_gelu_into, library=_library_gelus(),
        mistakes=(Mistake(_gelu_into_from_the_library, SWITCHED_OFF),
                  Mistake(_gelu_new_array, "return `out` itself"),
                  Mistake(_gelu_into_through_temporaries, "some operation made a temporary"),
                  Mistake(_gelu_into_with_power, "x ** 3 runs NumPy's general power"),
                  Mistake(_gelu_into_numpy_by_name, NUMPY_BY_NAME))),
}
