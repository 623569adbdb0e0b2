"""Exercises of lesson 03 (masked multi-head self-attention), with their checks.

    attention_causal_mask       build the (T, T) mask that lets query i see keys 0..i only
    attention_softmax_backward  dL/ds for one row of p = softmax(s), given dL/dp
    attention_param_count       the parameters of one attention sublayer of GPT-1

Each check compares the student's answer with the library (`causal_mask`, a finite-difference
gradient from `minigpt1.gradcheck`, `parameter_shapes`) on inputs it builds itself from a
fixed seed, and says what is wrong in terms of the lesson when they differ.
"""

import numpy as np

from minigpt1 import parameter_shapes
from minigpt1.config import GPTConfig
from minigpt1.gradcheck import numerical_gradient, rel_error
from minigpt1.layers.attention import causal_mask

from .base import Exercise

# ---- the causal mask ---------------------------------------------------------------------


def build_causal_mask(T):
    """(T, T) bool: True where query i (row) may attend to key j (column), that is j <= i."""
    rows = np.arange(T)[:, None]  # (T, 1) query positions
    cols = np.arange(T)[None, :]  # (1, T) key positions
    return cols <= rows  # broadcasts to (T, T): the lower triangle, diagonal included


def check_causal_mask(build):
    for T in (1, 2, 5, 8):
        mask = np.asarray(build(T))
        expected = causal_mask(T, T, np)  # the library's mask
        assert mask.shape == (T, T), f"for T={T} the mask has shape ({T}, {T}), not {mask.shape}"
        assert mask.dtype == bool, (f"return booleans (True = may attend), not dtype {mask.dtype}: "
                                    "a comparison or .astype(bool) gives them")
        if np.array_equal(mask, expected):
            continue
        if np.array_equal(mask, expected.T):
            raise AssertionError("that is the transpose: rows are queries, columns are keys, "
                                 "and query i may see keys 0..i (the lower triangle)")
        if np.array_equal(mask, np.tril(np.ones((T, T), dtype=bool), k=-1)):
            raise AssertionError("the diagonal is missing: a token may attend to itself "
                                 "(without it, row 0 would have no key at all)")
        raise AssertionError(f"for T={T} expected\n{expected.astype(int)}\ngot\n{mask.astype(int)}")


# ---- softmax backward, one row -----------------------------------------------------------


def softmax_backward_row(p, dp):
    """dL/ds for one row p = softmax(s) (T,), given dL/dp (T,). Only p is needed, not s."""
    # dp_j/ds_i = p_j (delta_ij - p_i), so ds_i = sum_j dp_j p_j (delta_ij - p_i)
    #                                          = p_i (dp_i - sum_j p_j dp_j)
    return p * (dp - np.sum(p * dp))


def _softmax(s):
    e = np.exp(s - s.max())  # exp(-inf) = 0: masked entries get probability 0
    return e / e.sum()


def check_softmax_backward(backward):
    rng = np.random.default_rng(3)
    s = rng.standard_normal(7)  # (T,) scores of one query row
    dp = rng.standard_normal(7)  # (T,) a random upstream gradient, never all ones
    p = _softmax(s)
    ds = np.asarray(backward(p.copy(), dp.copy()), dtype=float)
    assert ds.shape == p.shape, f"ds must have the shape of p, {p.shape}; got {ds.shape}"
    numerical = numerical_gradient(lambda: np.sum(_softmax(s) * dp), s)  # f(s) = sum(p * dp)
    err = rel_error(ds, numerical)
    if err > 1e-6:
        hint = ""
        if np.allclose(ds, p * dp):
            hint = " You kept only the diagonal of the Jacobian: subtract p_i * sum_j p_j dp_j."
        elif np.allclose(ds, dp - np.sum(p * dp)):
            hint = " Multiply by p: ds_i = p_i (dp_i - sum_j p_j dp_j)."
        raise AssertionError(f"ds differs from the finite-difference gradient (relative error "
                             f"{err:.1e}, expected below 1e-6).{hint}")
    # a masked row: the last three keys are in the future, probabilities exactly 0
    s_masked = np.where(np.arange(7) < 4, s, -np.inf)
    p_masked = _softmax(s_masked)
    ds_masked = np.asarray(backward(p_masked, dp.copy()), dtype=float)
    assert np.all(np.isfinite(ds_masked)), "a masked row (p = 0 on future keys) gave NaN or inf"
    assert np.all(ds_masked[4:] == 0), ("masked keys (p = 0) must get ds = 0 exactly: "
                                        "your formula should be a multiple of p")


# ---- parameter count ---------------------------------------------------------------------


def attention_param_count():
    """One attention sublayer of GPT-1 (C = 768): c_attn (C -> 3C) and c_proj (C -> C)."""
    C = 768
    c_attn = C * 3 * C + 3 * C  # weight (C, 3C): q | k | v side by side, and its bias
    c_proj = C * C + C  # weight (C, C) mixes the heads' outputs, and its bias
    return c_attn + c_proj  # 2,362,368: the number of heads does not appear


def check_param_count(answer):
    if answer is None:
        raise AssertionError("replace None with your number (an int)")
    shapes = parameter_shapes(GPTConfig())  # the gpt1 preset: C = 768, 12 heads
    expected = sum(int(np.prod(shape)) for name, shape in shapes.items()
                   if name.startswith("h.0.attn."))
    C, nh = 768, 12
    hints = {
        C * 3 * C + C * C: "you forgot the two biases (3C for c_attn, C for c_proj)",
        C * 3 * C + 3 * C: "you counted c_attn only: c_proj (C -> C, with a bias) follows it",
        expected * nh: "the heads share c_attn and c_proj: each head reads its own hs = C / nh "
                       "columns, so the count does not depend on the number of heads",
        expected // nh: "each head owns C / nh columns of q, k and v, but all heads together "
                        "use the whole c_attn and c_proj",
    }
    default = "count c_attn (C -> 3C) and c_proj (C -> C), weights and biases"
    hint = hints.get(answer, default) if isinstance(answer, (int, np.integer)) else default
    assert answer == expected, f"{answer!r} is not right: {hint}"


EXERCISES = {
    "attention_causal_mask": Exercise(solution=build_causal_mask, check=check_causal_mask),
    "attention_softmax_backward": Exercise(solution=softmax_backward_row,
                                           check=check_softmax_backward),
    "attention_param_count": Exercise(solution=attention_param_count(), check=check_param_count),
}
