"""Exercises of lesson 02 (layers and their gradients): three local derivatives, by hand.

Each check builds small float64 inputs with a fixed seed, wraps the student's formula as the
backward pass of the library's own forward, and gradient-checks it with `check_layer`
(central differences along a random upstream gradient). A correct answer agrees to about
1e-9; the checks ask for 1e-6, and try to say which part of the formula is off when it fails.
"""

import numpy as np

from minigpt1.gradcheck import check_layer, rel_error
from minigpt1.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
)

from .base import SWITCHED_OFF, Exercise, Mistake

TOL = 1e-6  # a right formula lands near 1e-9; a wrong one near 1e-2 or worse


def _as_array(answer, shape, what):
    assert answer is not None, f"{what} returned None: return the array"
    answer = np.asarray(answer, dtype=np.float64)
    assert answer.shape == shape, f"{what} returned shape {answer.shape}, expected {shape}"
    return answer


# --- 1. GELU's derivative --------------------------------------------------------------------


def gelu_derivative(x):
    """dGELU/dx for the tanh form, elementwise: the local derivative gelu_backward multiplies
    by dy."""
    k = np.sqrt(2.0 / np.pi)
    u = k * (x + 0.044715 * x**3)  # the argument of tanh
    t = np.tanh(u)
    du_dx = k * (1.0 + 3 * 0.044715 * x**2)
    # product rule on 0.5 * x * (1 + t), with dt/du = 1 - t^2
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * du_dx


def check_gelu_derivative(answer):
    x = np.random.default_rng(2).standard_normal((5, 7)) * 2.0  # (B, C), tails included

    def backward(dy, cache):
        return dy * _as_array(answer(cache.x.copy()), cache.x.shape, "gelu_derivative(x)")

    err = check_layer(gelu_forward, backward, {"x": x})["x"]
    at_zero = _as_array(answer(np.zeros(1)), (1,), "gelu_derivative(x)")[0]
    assert abs(at_zero - 0.5) < 1e-9, (
        f"gelu_derivative(0) = {at_zero:.4f}, but GELU'(0) = 0.5 exactly (tanh(0) = 0): "
        f"check the 0.5 (1 + t) term")
    assert err < TOL, (
        f"relative error {err:.1e} against finite differences of gelu_forward (want < {TOL:.0e})."
        f" Hint: y = 0.5 x (1 + t) is a product, so dy/dx = 0.5 (1 + t) + 0.5 x dt/dx, and "
        f"dt/dx = (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)")


# --- 2. LayerNorm's dx -----------------------------------------------------------------------


def layernorm_dx(dy, xhat, rstd, weight):
    """dL/dx of LayerNorm over the last axis, from the forward's cache (xhat, rstd, g)."""
    dxhat = dy * weight  # (..., C): through y = xhat * g + b
    # xhat = (x - mu) * rstd, where mu and rstd depend on every x of the row
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)  # (..., 1): the path through mu
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)  # (..., 1): through rstd
    return rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # (..., C)


def _layernorm_error(answer, weight, seed):
    rng = np.random.default_rng(seed)
    C = weight.shape[0]
    inputs = {"x": rng.standard_normal((2, 3, C)) * 1.5 + 0.3,  # (B, T, C)
              "weight": weight, "bias": 0.1 * rng.standard_normal(C)}

    def backward(dy, cache):
        _, dweight, dbias = layernorm_backward(dy.copy(), cache)  # dx is the student's part
        dx = answer(dy.copy(), cache.xhat.copy(), cache.rstd.copy(), cache.weight.copy())
        return _as_array(dx, dy.shape, "layernorm_dx(...)"), dweight, dbias

    # dy from another seed than x: were dy = x's own draw, dy would lie in the span of 1 and
    # xhat, where LayerNorm's dx is exactly zero, and the check would test nothing
    return check_layer(layernorm_forward, backward, inputs, seed=seed + 1)["x"]


def check_layernorm_dx(answer):
    gain = 1.0 + 0.5 * np.random.default_rng(3).standard_normal(6)  # (C,), away from 1
    err = _layernorm_error(answer, gain, seed=3)
    if err < TOL:
        return
    unit_gain_err = _layernorm_error(answer, np.ones(6), seed=3)
    assert unit_gain_err >= TOL, (
        f"right with g = 1 but not with another gain (relative error {err:.1e}): start from "
        f"dxhat = dy * g, and use dxhat in both means")
    raise AssertionError(
        f"relative error {err:.1e} against finite differences of layernorm_forward (want < "
        f"{TOL:.0e}). Hint: with dxhat = dy * g, dx = rstd * (dxhat - mean(dxhat) - xhat * "
        f"mean(dxhat * xhat)), both means over the last axis (keepdims=True)")


# --- 3. softmax cross-entropy's dlogits ------------------------------------------------------


def cross_entropy_dlogits(logits, targets):
    """d(mean cross-entropy)/dlogits for logits (N, V) and integer targets (N,)."""
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)  # (N, V), stable: no exp overflow
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # (N, V) softmax
    onehot = np.zeros_like(probs)
    onehot[np.arange(N), targets] = 1.0  # (N, V)
    return (probs - onehot) / N  # the loss is a mean over the N positions


def check_cross_entropy_dlogits(answer):
    rng = np.random.default_rng(4)
    N, V = 6, 9
    logits = 3.0 * rng.standard_normal((N, V))  # (N, V)
    targets = rng.integers(0, V, size=N)  # (N,)

    def student(z):
        return _as_array(answer(z.copy(), targets.copy()), (N, V), "cross_entropy_dlogits(...)")

    def backward(dloss, cache):
        return dloss * student(logits)  # the upstream gradient of a scalar loss is a scalar

    err = check_layer(lambda z: cross_entropy_forward(z, targets), backward,
                      {"logits": logits})["logits"]
    if err < TOL:
        return
    _, cache = cross_entropy_forward(logits, targets)
    right = cross_entropy_backward(1.0, cache)  # (N, V)
    got = student(logits)
    assert rel_error(got, N * right) >= TOL, (
        f"N times too large: the loss is the mean over the {N} positions, so divide by N")
    assert rel_error(got, -right) >= TOL, "the sign is flipped: the gradient is softmax - onehot"
    assert rel_error(got, N * right + np.eye(V)[targets]) >= TOL, (
        "that is the softmax alone: subtract 1 at each row's target, then divide by N")
    raise AssertionError(
        f"relative error {err:.1e} against finite differences of cross_entropy_forward (want < "
        f"{TOL:.0e}). Hint: dlogits = (softmax(logits) - onehot(targets)) / N")


def _gelu_from_the_library(x):
    return gelu_backward(np.ones_like(x), gelu_forward(x)[1])  # dy = 1 leaves the derivative


def _gelu_without_product_rule(x):
    k = np.sqrt(2.0 / np.pi)
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * x * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * x**2)  # the 0.5 (1 + t) is lost


def _gelu_without_chain_rule(x):
    t = np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2)  # du/dx is missing


EXERCISES = {
    "gradients_gelu_derivative": Exercise(
        solution=gelu_derivative, check=check_gelu_derivative, library=(gelu_backward,),
        mistakes=(Mistake(_gelu_from_the_library, SWITCHED_OFF),
                  Mistake(_gelu_without_product_rule, "check the 0.5 (1 + t) term"),
                  Mistake(_gelu_without_chain_rule, "dt/dx = (1 - t^2) sqrt(2/pi)"))),
    "gradients_layernorm_dx": Exercise(solution=layernorm_dx, check=check_layernorm_dx),
    "gradients_cross_entropy_dlogits": Exercise(solution=cross_entropy_dlogits,
                                                check=check_cross_entropy_dlogits),
}
