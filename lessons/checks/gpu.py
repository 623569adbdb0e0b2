"""Exercises of lesson 07 (on the GPU): bytes moved, a GELU without temporaries, and the
arithmetic intensity of a matrix product.

The memory model of the lesson: every element-wise NumPy operation is one pass over memory
that reads each distinct input array once and writes its output once; a Python scalar costs
nothing; a float32 value is 4 bytes. The checks compare counts with that model, and measure
the student's GELU with `tracemalloc` (NumPy reports its array allocations to it), so they
run on the CPU with NumPy alone.
"""

import inspect
import re
import tracemalloc

import numpy as np

from minigpt1 import parameter_count
from minigpt1.backend import xp_of
from minigpt1.config import GPTConfig
from minigpt1.layers import gelu_forward
from minigpt1.layers.gelu import GELU_COEF, SQRT_2_OVER_PI

from .base import Exercise

FLOAT32_BYTES = 4


def _number(answer, what):
    assert answer is not None, f"replace None with your number for {what}"
    assert isinstance(answer, (int, float, np.integer, np.floating)), (
        f"{what} should be a number, got {type(answer).__name__}")
    return float(answer)


# --- 1. Bytes moved by AdamW's first-moment update -------------------------------------------

# m *= b1                  pass 1: read m, write m                      2 arrays
# m += (1.0 - b1) * g      pass 2: read g, write a temporary            2 arrays
#                          pass 3: read m and the temporary, write m    3 arrays
ADAM_MOMENT_ARRAYS = 2 + 2 + 3
ADAM_MOMENT_BYTES = ADAM_MOMENT_ARRAYS * FLOAT32_BYTES * parameter_count(GPTConfig.preset("small"))


def check_adam_moment_bytes(answer):
    n = parameter_count(GPTConfig.preset("small"))
    got = _number(answer, "the bytes moved by the moment update")
    if got == ADAM_MOMENT_BYTES:
        return
    per_value = got / n
    assert per_value != ADAM_MOMENT_ARRAYS, (
        "that counts float32 values, not bytes: each one is 4 bytes")
    assert per_value != 3 * FLOAT32_BYTES, (
        "12 bytes per parameter (read m and g, write m) is what ONE fused kernel would move; "
        "NumPy runs `(1.0 - b1) * g` as its own pass into a temporary array, then adds it")
    assert per_value != 6 * FLOAT32_BYTES, (
        "close: the temporary that `(1.0 - b1) * g` writes must also be read back by `m += ...`")
    raise AssertionError(
        f"{got:,.0f} bytes is {per_value:.2f} bytes per parameter. Count the passes: `m *= b1` "
        f"reads and writes m; `(1.0 - b1) * g` reads g and writes a temporary; `m += tmp` "
        f"reads m and tmp and writes m. Each array touched is 4 bytes per parameter, and the "
        f"small preset has {n:,} parameters")


# --- 2. GELU into a buffer, with no temporary arrays --------------------------------------------


def gelu_into(x, out):
    """GELU of x written into `out` (same shape and dtype), allocating no array at all.

    The same nine passes as the library's gelu_forward, every one of them writing into `out`:
    the only memory touched is x and out. Works for NumPy and CuPy arrays alike.
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


def _mentions_numpy(function):
    """True when the function's own source calls numpy by name (not through xp_of)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # no source to read (e.g. compiled or built on the fly)
        return False
    return bool(re.search(r"\b(np|numpy)\.", source))


def check_gelu_into(answer):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((64, 512)) * 2.0).astype(np.float32)  # (N, 4C), tails included
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
        f"your function allocated {peak / 1024:.0f} KiB while x is {x.nbytes / 1024:.0f} KiB: "
        f"some operation made a temporary array. Use `xp.multiply(a, b, out=out)`, "
        f"`xp.tanh(out, out=out)` and in-place operators (`out *= x`) instead of `a * b`")
    x64 = x_before.astype(np.float64)
    out64 = answer(x64, np.empty_like(x64))
    assert out64.dtype == np.float64 and np.allclose(out64, gelu_forward(x64)[0], atol=1e-12), (
        "in float64 the result should match gelu_forward to about 1e-12")
    assert not _mentions_numpy(answer), (
        "the values are right, but your function calls numpy by name (np.tanh, ...): on a CuPy "
        "array that copies to the host or fails. Ask the array for its module: xp = xp_of(x)")


# --- 3. Arithmetic intensity of the MLP's first matrix product ----------------------------------


def matmul_intensity(M, K, N, itemsize=FLOAT32_BYTES):
    """FLOPs per byte of (M, K) @ (K, N): 2 M K N FLOPs over reading both and writing (M, N)."""
    flops = 2 * M * K * N  # one multiply and one add per (m, k, n)
    bytes_moved = itemsize * (M * K + K * N + M * N)
    return flops / bytes_moved


# mlp.c_fc in the small preset at batch 8 x 128 tokens: (B*T, C) @ (C, 4C)
C_FC_INTENSITY = matmul_intensity(8 * 128, 128, 4 * 128)


def check_matmul_intensity(answer):
    got = _number(answer, "the arithmetic intensity")
    if abs(got - C_FC_INTENSITY) <= 0.01 * C_FC_INTENSITY:
        return
    ratio = got / C_FC_INTENSITY
    assert abs(ratio - 0.5) > 0.01, "each multiply-add is 2 FLOPs (a multiply and an add)"
    assert abs(ratio - 4.0) > 0.04, "divide by bytes, not by values: a float32 is 4 bytes"
    assert abs(ratio - 0.25) > 0.01, "a float32 is 4 bytes, not 16: count each value once"
    raise AssertionError(
        f"{got:.2f} FLOP/byte is not it. The product is (B*T, C) @ (C, 4C) with B*T = 1024, "
        f"C = 128: FLOPs = 2 * M * K * N; bytes = 4 * (M*K + K*N + M*N), the two inputs read "
        f"once and the output written once")


EXERCISES = {
    "gpu_adam_moment_bytes": Exercise(solution=ADAM_MOMENT_BYTES, check=check_adam_moment_bytes),
    "gpu_gelu_into": Exercise(solution=gelu_into, check=check_gelu_into),
    "gpu_matmul_intensity": Exercise(solution=C_FC_INTENSITY, check=check_matmul_intensity),
}
