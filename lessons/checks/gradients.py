"""Exercises of lesson 02 (layers and their gradients): the backward passes, by hand.

    gradients_linear_backward        dx, dW, db of y = x W + b, x (B, T, C_in), W stored [in, out]
    gradients_layernorm_param_grads  LayerNorm's dg and db
    gradients_layernorm_dx           LayerNorm's dx, through the mean and the rstd
    gradients_gelu_derivative        GELU's local derivative (tanh form)
    gradients_dropout_forward        inverted dropout: the mask and the 1/(1-p) scale
    gradients_dropout_backward       dropout's backward, reusing the forward's mask
    gradients_cross_entropy_dlogits  d(mean cross-entropy)/dlogits

Each check builds small float64 inputs with a fixed seed, runs the student's function as the
backward pass of the library's own forward, and gradient-checks it with `check_layer` (central
differences along a random upstream gradient). A correct answer agrees to about 1e-9; the
checks ask for 1e-6. When an answer fails, the check compares it with the library's gradients
(computed outside the student's call) to say which part of the formula is off.
"""

import numpy as np

from minigpt1.gradcheck import check_layer, rel_error
from minigpt1.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
)
from minigpt1.layers.dropout import DropoutCache

from .base import SWITCHED_OFF, Exercise, Mistake, as_array

TOL = 1e-6  # a right formula lands near 1e-9; a wrong one near 1e-2 or worse


def _unpack(result, names, what):
    """The answer's tuple, one float64 array per name."""
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else "one value"
        raise AssertionError(f"{what} must return {len(names)} arrays, ({', '.join(names)}); "
                             f"it returned {got}")
    for name, value in zip(names, result, strict=True):
        assert value is not None, f"{what} returned None for {name}: return the array"
    return tuple(np.asarray(value, dtype=np.float64) for value in result)


def _same(a, b):
    return rel_error(a, b) < TOL


# --- 1. the linear layer: dx, dW, db ---------------------------------------------------------


def linear_backward_by_hand(dy, x, weight):
    """dx, dW, db of y = x @ W + b, for x (B, T, C_in) and W (C_in, C_out) stored [in, out]."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, C_in): every position of every sequence is a row
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, C_out)
    dx = (dy2 @ weight.T).reshape(x.shape)  # (B, T, C_in)
    dweight = x2.T @ dy2  # (C_in, C_out): W serves every position, so the N terms add up
    dbias = dy2.sum(axis=0)  # (C_out,): so does b
    return dx, dweight, dbias


def _linear_shapes(dx, dweight, dbias, x_shape, C_out):
    C_in = x_shape[-1]
    assert dweight.shape != (C_out, C_in), (
        f"dweight has shape {dweight.shape}: it is transposed. A gradient has the shape of what "
        f"it differentiates, W's ({C_in}, {C_out}): that is x^T dy, not dy^T x")
    assert dweight.shape == (C_in, C_out), (
        f"dweight has shape {dweight.shape}, W has ({C_in}, {C_out}): W serves every position, "
        f"so its gradient sums over batch AND time (flatten x and dy to N = B*T rows first)")
    assert dbias.shape == (C_out,), (
        f"dbias has shape {dbias.shape}, b has ({C_out},): b is added at every position, so db "
        f"sums dy over batch AND time")
    assert dx.shape == x_shape, (
        f"dx has shape {dx.shape}, x has {x_shape}: bring dy W^T back to x's shape")


LINEAR_FORMULAS = {"x": "dx = dy W^T", "weight": "dW = x^T dy, summed over all B*T positions",
                   "bias": "db = dy summed over all B*T positions"}


def check_linear_backward(answer):
    rng = np.random.default_rng(5)
    B, T, C_in, C_out = 2, 3, 4, 5  # all different: a transposed or unsummed result shows
    inputs = {"x": rng.standard_normal((B, T, C_in)),
              "weight": 0.5 * rng.standard_normal((C_in, C_out)),  # (C_in, C_out), [in, out]
              "bias": rng.standard_normal(C_out)}  # (C_out,), away from 0
    seen = {}

    def backward(dy, cache):
        grads = _unpack(answer(dy.copy(), cache.x.copy(), cache.weight.copy()),
                        ("dx", "dweight", "dbias"), "linear_backward_by_hand(dy, x, weight)")
        _linear_shapes(*grads, cache.x.shape, C_out)
        seen.update(dy=dy, cache=cache, grads=grads)
        return grads

    errors = check_layer(linear_forward, backward, inputs, seed=5)
    right = linear_backward(seen["dy"], seen["cache"])  # the library's, outside the answer
    for (name, err), got, want in zip(errors.items(), seen["grads"], right, strict=True):
        if err < TOL:
            continue
        assert not _same(got, -want), f"the sign of d{name} is flipped: {LINEAR_FORMULAS[name]}"
        assert not _same(got, want / (B * T)), (
            f"d{name} is divided by N = B*T: the positions' contributions add up, sum them")
        assert np.any(got), f"d{name} is zero: {LINEAR_FORMULAS[name]}"
        raise AssertionError(f"d{name}: relative error {err:.1e} against finite differences of "
                             f"linear_forward (want < {TOL:.0e}). Hint: {LINEAR_FORMULAS[name]}")


def _linear_from_the_library(dy, x, weight):
    return linear_backward(dy, (x, weight))  # the cache is (x, weight)


def _linear_dw_transposed(dy, x, weight):
    dx, dweight, dbias = linear_backward_by_hand(dy, x, weight)
    return dx, dweight.T, dbias  # dy^T x: (C_out, C_in)


def _linear_dw_per_sequence(dy, x, weight):
    dx, _, dbias = linear_backward_by_hand(dy, x, weight)
    return dx, np.swapaxes(x, 1, 2) @ dy, dbias  # (B, C_in, C_out): summed over T, not B


def _linear_db_over_batch_only(dy, x, weight):
    dx, dweight, _ = linear_backward_by_hand(dy, x, weight)
    return dx, dweight, dy.sum(axis=0)  # (T, C_out)


def _linear_without_db(dy, x, weight):
    return linear_backward_by_hand(dy, x, weight)[:2]


# --- 2. LayerNorm: dg and db -----------------------------------------------------------------


def layernorm_param_grads(dy, xhat):
    """dL/dg and dL/db of y = xhat * g + b, for dy and xhat (B, T, C): one entry per channel."""
    C = dy.shape[-1]
    dweight = (dy * xhat).reshape(-1, C).sum(axis=0)  # (C,): g scales xhat at every position
    dbias = dy.reshape(-1, C).sum(axis=0)  # (C,): b is added at every position
    return dweight, dbias


def _layernorm_inputs(seed, weight, shape):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal(shape) * 1.5 + 0.3,  # (B, T, C): mean and variance matter
            "weight": weight, "bias": 0.1 * rng.standard_normal(shape[-1])}  # (C,), (C,)


def check_layernorm_param_grads(answer):
    B, T, C = 2, 3, 6
    inputs = _layernorm_inputs(6, 1.0 + 0.5 * np.random.default_rng(6).standard_normal(C),
                               (B, T, C))
    seen = {}

    def backward(dy, cache):
        dx, _, _ = layernorm_backward(dy.copy(), cache)  # dx is not the student's part here
        grads = _unpack(answer(dy.copy(), cache.xhat.copy()), ("dweight", "dbias"),
                        "layernorm_param_grads(dy, xhat)")
        for name, grad in zip(("dweight", "dbias"), grads, strict=True):
            assert grad.shape != (B, T), (
                f"{name} has shape {grad.shape}: you summed over the channels. g and b have one "
                f"entry per channel, so sum over every axis but the last")
            assert grad.shape == (C,), (
                f"{name} has shape {grad.shape}, not ({C},): g and b serve every position, so "
                f"sum over batch AND time (every axis but the last)")
        seen.update(dy=dy, cache=cache, grads=grads)
        return dx, *grads

    errors = check_layer(layernorm_forward, backward, inputs, seed=7)
    (dweight, dbias), (_, want_dweight, want_dbias) = seen["grads"], layernorm_backward(
        seen["dy"], seen["cache"])
    if max(errors["weight"], errors["bias"]) < TOL:
        return
    assert not (_same(dweight, want_dbias) and _same(dbias, want_dweight)), (
        "dweight and dbias are swapped: return (dweight, dbias) in that order")
    assert not _same(dweight, want_dbias), (
        "dweight is dbias: the gain multiplies xhat, so dg sums dy * xhat, not dy alone")
    assert not (_same(dweight, want_dweight / (B * T)) or _same(dbias, want_dbias / (B * T))), (
        "divided by N = B*T: every position adds its own share, so sum them, not average")
    raise AssertionError(
        f"relative errors {errors['weight']:.1e} (dweight), {errors['bias']:.1e} (dbias) against"
        f" finite differences of layernorm_forward (want < {TOL:.0e}). Hint: dg = sum of "
        f"dy * xhat, db = sum of dy, both over every position")


def _params_from_the_library(dy, xhat):
    _, dweight, dbias = layernorm_backward(dy, (xhat, 1.0, 1.0))  # rstd and g do not matter
    return dweight, dbias


def _params_over_batch_only(dy, xhat):
    return (dy * xhat).sum(axis=0), dy.sum(axis=0)  # (T, C)


def _params_over_channels(dy, xhat):
    return (dy * xhat).sum(axis=-1), dy.sum(axis=-1)  # (B, T): the wrong axis


def _params_without_xhat(dy, xhat):
    _, dbias = layernorm_param_grads(dy, xhat)
    return dbias, dbias


# --- 3. LayerNorm's dx -----------------------------------------------------------------------


def layernorm_dx(dy, xhat, rstd, weight):
    """dL/dx of LayerNorm over the last axis, from the forward's cache (xhat, rstd, g)."""
    dxhat = dy * weight  # (..., C): through y = xhat * g + b
    # xhat = (x - mu) * rstd, where mu and rstd depend on every x of the row
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)  # (..., 1): the path through mu
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)  # (..., 1): through rstd
    return rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # (..., C)


def _layernorm_dx_error(answer, weight, seed):
    """The relative error of the answer's dx, and (xhat, dx) of its last call."""
    seen = {}

    def backward(dy, cache):
        _, dweight, dbias = layernorm_backward(dy.copy(), cache)  # dx is the student's part
        dx = answer(dy.copy(), cache.xhat.copy(), cache.rstd.copy(), cache.weight.copy())
        seen.update(xhat=cache.xhat, dx=as_array(dx, dy.shape, "layernorm_dx(...)"))
        return seen["dx"], dweight, dbias

    # dy from another seed than x: were dy = x's own draw, dy would lie in the span of 1 and
    # xhat, where LayerNorm's dx is exactly zero, and the check would test nothing
    inputs = _layernorm_inputs(seed, weight, (2, 3, weight.shape[0]))
    return check_layer(layernorm_forward, backward, inputs, seed=seed + 1)["x"], seen


def check_layernorm_dx(answer):
    gain = 1.0 + 0.5 * np.random.default_rng(3).standard_normal(6)  # (C,), away from 1
    err, seen = _layernorm_dx_error(answer, gain, seed=3)
    if err < TOL:
        return
    unit_gain_err, _ = _layernorm_dx_error(answer, np.ones(6), seed=3)
    assert unit_gain_err >= TOL, (
        f"right with g = 1 but not with another gain (relative error {err:.1e}): start from "
        f"dxhat = dy * g, and use dxhat in both means")
    dx, xhat = seen["dx"], seen["xhat"]
    scale = np.abs(dx).max() * dx.shape[-1]
    assert np.abs(dx.sum(axis=-1)).max() < 1e-6 * scale, (
        "the rows of your dx do not sum to zero, but shifting a row of x leaves LayerNorm's "
        "output unchanged, so they must: take both means over the last axis, the row "
        "(axis=-1, keepdims=True)")
    assert np.abs((dx * xhat).sum(axis=-1)).max() < 1e-3 * scale, (
        "your dx has a component along xhat, but rescaling a row of x (almost) leaves the "
        "output unchanged: subtract xhat * mean(dxhat * xhat), the path through rstd")
    raise AssertionError(
        f"relative error {err:.1e} against finite differences of layernorm_forward (want < "
        f"{TOL:.0e}). Hint: with dxhat = dy * g, dx = rstd * (dxhat - mean(dxhat) - xhat * "
        f"mean(dxhat * xhat)), both means over the last axis (keepdims=True)")


def _dx_from_the_library(dy, xhat, rstd, weight):
    return layernorm_backward(dy, (xhat, rstd, weight))[0]


def _dx_with_unit_gain(dy, xhat, rstd, weight):
    return layernorm_dx(dy, xhat, rstd, np.ones_like(weight))  # g forgotten


def _dx_means_over_the_batch(dy, xhat, rstd, weight):
    dxhat = dy * weight
    mean_dxhat = dxhat.mean(axis=0, keepdims=True)  # the wrong axis: over the batch
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=0, keepdims=True)
    return rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _dx_without_the_rstd_path(dy, xhat, rstd, weight):
    dxhat = dy * weight
    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))  # only the path through mu


# --- 4. GELU's derivative --------------------------------------------------------------------


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
        return dy * as_array(answer(cache.x.copy()), cache.x.shape, "gelu_derivative(x)")

    err = check_layer(gelu_forward, backward, {"x": x})["x"]
    at_zero = as_array(answer(np.zeros(1)), (1,), "gelu_derivative(x)")[0]
    assert abs(at_zero - 0.5) < 1e-9, (
        f"gelu_derivative(0) = {at_zero:.4f}, but GELU'(0) = 0.5 exactly (tanh(0) = 0): "
        f"check the 0.5 (1 + t) term")
    assert err < TOL, (
        f"relative error {err:.1e} against finite differences of gelu_forward (want < {TOL:.0e})."
        f" Hint: y = 0.5 x (1 + t) is a product, so dy/dx = 0.5 (1 + t) + 0.5 x dt/dx, and "
        f"dt/dx = (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)")


def _gelu_from_the_library(x):
    return gelu_backward(np.ones_like(x), gelu_forward(x)[1])  # dy = 1 leaves the derivative


def _gelu_without_product_rule(x):
    k = np.sqrt(2.0 / np.pi)
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * x * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * x**2)  # the 0.5 (1 + t) is lost


def _gelu_without_chain_rule(x):
    t = np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2)  # du/dx is missing


# --- 5. dropout, forward ---------------------------------------------------------------------


def dropout_forward_by_hand(x, p, rng):
    """Inverted dropout: y = x * keep / (1 - p), keep = (u >= p), u = rng.random(x.shape)."""
    keep = rng.random(x.shape) >= p  # (...) bool: each element survives with probability 1 - p
    return x * keep / (1.0 - p), keep  # survivors scaled up, so that E[y] = x


def check_dropout_forward(answer):
    x = np.random.default_rng(8).standard_normal((4, 5, 6)) + 1.0  # (B, T, C)
    for p in (0.1, 0.5):
        want_y, cache = dropout_forward(x, p, np.random.default_rng(9))  # the library's
        want_keep = cache.mask != 0
        y, keep = _unpack(answer(x.copy(), p, np.random.default_rng(9)), ("y", "keep"),
                          "dropout_forward_by_hand(x, p, rng)")
        assert y.shape == keep.shape == x.shape, (
            f"y and keep must have x's shape {x.shape}; got {y.shape} and {keep.shape}")
        keep = keep != 0
        assert not np.array_equal(keep, ~want_keep), (
            f"with p = {p} you kept the elements to drop: an element survives when u >= p, "
            f"which happens with probability 1 - p")
        assert np.array_equal(keep, want_keep), (
            f"with p = {p} your mask is not the library's for the same generator: draw "
            f"u = rng.random(x.shape) once, and keep where u >= p")
        assert not np.allclose(y, x * keep), (
            "the survivors are not scaled: divide them by (1 - p), so that the expected output "
            "equals x and nothing changes at evaluation time (inverted dropout)")
        assert not np.allclose(y, x * keep * (1.0 - p)), (
            "the survivors are multiplied by (1 - p): divide by it instead, so that E[y] = x")
        assert np.allclose(y, want_y, rtol=1e-12, atol=0.0), (
            f"with p = {p}, y differs from the library's dropout with the same mask: "
            f"y = x * keep / (1 - p)")


def _dropout_forward_from_the_library(x, p, rng):
    y, cache = dropout_forward(x, p, rng)
    return y, cache.mask != 0


def _dropout_forward_without_scale(x, p, rng):
    keep = rng.random(x.shape) >= p
    return x * keep, keep


def _dropout_forward_keeps_the_dropped(x, p, rng):
    keep = rng.random(x.shape) < p  # survives with probability p: the comparison is turned
    return x * keep / (1.0 - p), keep


# --- 6. dropout, backward --------------------------------------------------------------------


def dropout_backward_by_hand(dy, keep, p):
    """dL/dx of y = x * keep / (1 - p): the forward's mask and scale, applied to dy."""
    return dy * keep / (1.0 - p)  # a dropped element gets no gradient, a survivor gets it scaled


def check_dropout_backward(answer):
    p = 0.25
    x = np.random.default_rng(10).standard_normal((3, 4, 5))  # (B, T, C)

    def forward(x):  # the library's dropout, with the same mask at every call: a fresh generator
        return dropout_forward(x, p, np.random.default_rng(11))

    seen = {}

    def backward(dy, cache):
        keep = cache.mask != 0  # (B, T, C) bool, the forward's mask
        dx = answer(dy.copy(), keep.copy(), p)
        seen.update(dy=dy, keep=keep, dx=as_array(dx, dy.shape, "dropout_backward_by_hand(...)"))
        return seen["dx"]

    err = check_layer(forward, backward, {"x": x}, seed=12)["x"]
    if err < TOL:
        return
    dy, keep, dx = seen["dy"], seen["keep"], seen["dx"]
    assert not _same(dx, dy * keep), (
        "the scale 1/(1-p) is missing: the forward scaled each survivor by it, so its gradient "
        "is scaled by it too")
    assert not _same(dx, dy / (1.0 - p)), (
        "reuse the forward's mask: a dropped element never reached the output, so its gradient "
        "is zero")
    assert not _same(dx, dy * keep * (1.0 - p)), "divide by (1 - p), do not multiply"
    raise AssertionError(
        f"relative error {err:.1e} against finite differences of dropout_forward with a fixed "
        f"mask (want < {TOL:.0e}). Hint: dx = dy * keep / (1 - p)")


def _dropout_backward_from_the_library(dy, keep, p):
    return dropout_backward(dy, DropoutCache(keep / (1.0 - p)))


def _dropout_backward_without_scale(dy, keep, p):
    return dy * keep


def _dropout_backward_without_mask(dy, keep, p):
    return dy / (1.0 - p)


# --- 7. softmax cross-entropy's dlogits ------------------------------------------------------


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
        return as_array(answer(z.copy(), targets.copy()), (N, V), "cross_entropy_dlogits(...)")

    def backward(dloss, cache):
        return dloss * student(logits)  # the upstream gradient of a scalar loss is a scalar

    err = check_layer(lambda z: cross_entropy_forward(z, targets), backward,
                      {"logits": logits})["logits"]
    if err < TOL:
        return
    _, cache = cross_entropy_forward(logits, targets)
    right = cross_entropy_backward(1.0, cache)  # (N, V)
    got = student(logits)
    softmax = N * right + np.eye(V)[targets]  # (N, V)
    assert not _same(got, N * right), (
        f"N times too large: the loss is the mean over the {N} positions, so divide by N")
    assert not _same(got, -right), "the sign is flipped: the gradient is softmax - onehot"
    assert not (_same(got, softmax) or _same(got, softmax / N)), (
        "that is the softmax alone: subtract 1 at each row's target, then divide by N")
    raise AssertionError(
        f"relative error {err:.1e} against finite differences of cross_entropy_forward (want < "
        f"{TOL:.0e}). Hint: dlogits = (softmax(logits) - onehot(targets)) / N")


def _ce_from_the_library(logits, targets):
    return cross_entropy_backward(1.0, cross_entropy_forward(logits, targets)[1])


def _ce_without_mean(logits, targets):
    return logits.shape[0] * cross_entropy_dlogits(logits, targets)


def _ce_sign_flipped(logits, targets):
    return -cross_entropy_dlogits(logits, targets)


def _ce_softmax_alone(logits, targets):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True) / logits.shape[0]  # the one-hot is not subtracted


EXERCISES = {
    "gradients_linear_backward": Exercise(
        solution=linear_backward_by_hand, check=check_linear_backward, library=(linear_backward,),
        mistakes=(Mistake(_linear_from_the_library, SWITCHED_OFF),
                  Mistake(_linear_dw_transposed, "that is x^T dy, not dy^T x"),
                  Mistake(_linear_dw_per_sequence, "sums over batch AND time"),
                  Mistake(_linear_db_over_batch_only, "db sums dy over batch AND time"),
                  Mistake(_linear_without_db, "must return 3 arrays"))),
    "gradients_layernorm_param_grads": Exercise(
        solution=layernorm_param_grads, check=check_layernorm_param_grads,
        library=(layernorm_backward,),
        mistakes=(Mistake(_params_from_the_library, SWITCHED_OFF),
                  Mistake(_params_over_batch_only, "sum over batch AND time"),
                  Mistake(_params_over_channels, "you summed over the channels"),
                  Mistake(_params_without_xhat, "dg sums dy * xhat"))),
    "gradients_layernorm_dx": Exercise(
        solution=layernorm_dx, check=check_layernorm_dx, library=(layernorm_backward,),
        mistakes=(Mistake(_dx_from_the_library, SWITCHED_OFF),
                  Mistake(_dx_with_unit_gain, "right with g = 1"),
                  Mistake(_dx_means_over_the_batch, "do not sum to zero"),
                  Mistake(_dx_without_the_rstd_path, "the path through rstd"))),
    "gradients_gelu_derivative": Exercise(
        solution=gelu_derivative, check=check_gelu_derivative, library=(gelu_backward,),
        mistakes=(Mistake(_gelu_from_the_library, SWITCHED_OFF),
                  Mistake(_gelu_without_product_rule, "check the 0.5 (1 + t) term"),
                  Mistake(_gelu_without_chain_rule, "dt/dx = (1 - t^2) sqrt(2/pi)"))),
    "gradients_dropout_forward": Exercise(
        solution=dropout_forward_by_hand, check=check_dropout_forward,
        library=(dropout_forward,),
        mistakes=(Mistake(_dropout_forward_from_the_library, SWITCHED_OFF),
                  Mistake(_dropout_forward_without_scale, "the survivors are not scaled"),
                  Mistake(_dropout_forward_keeps_the_dropped, "you kept the elements to drop"))),
    "gradients_dropout_backward": Exercise(
        solution=dropout_backward_by_hand, check=check_dropout_backward,
        library=(dropout_backward,),
        mistakes=(Mistake(_dropout_backward_from_the_library, SWITCHED_OFF),
                  Mistake(_dropout_backward_without_scale, "the scale 1/(1-p) is missing"),
                  Mistake(_dropout_backward_without_mask, "reuse the forward's mask"))),
    "gradients_cross_entropy_dlogits": Exercise(
        solution=cross_entropy_dlogits, check=check_cross_entropy_dlogits,
        library=(cross_entropy_backward,),
        mistakes=(Mistake(_ce_from_the_library, SWITCHED_OFF),
                  Mistake(_ce_without_mean, "divide by N"),
                  Mistake(_ce_sign_flipped, "the sign is flipped"),
                  Mistake(_ce_softmax_alone, "that is the softmax alone"))),
}
