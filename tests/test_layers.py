"""Every hand-written backward pass against central finite differences, in float64.

Parameters are deliberately non-trivial (biases non-zero, gains not one) and the upstream
gradient is random, so no bug can hide behind a zero or a one. Every test runs twice: on the
plain layers alone, and with the fast paths of minigpt1/fast/ (what the model runs).
"""

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.gradcheck import check_layer, failures
from minigpt1.layers import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    squared_error_backward,
    squared_error_forward,
)
from minigpt1.layers.attention import causal_mask, causal_softmax

TOL = 1e-7  # float64 central differences agree with a correct backward to ~1e-9


@pytest.fixture(autouse=True, params=["plain", "fast"])
def paths(request, monkeypatch):
    """"plain": no fast path is registered, every layer runs its own body; "fast": as usual."""
    if request.param == "plain":
        monkeypatch.setattr(backend, "FAST_PATHS", {})
    return request.param


def randn(device, *shape, seed, scale=1.0, shift=0.0):
    values = np.random.default_rng(seed).standard_normal(shape) * scale + shift
    return backend.to_device(values, device, "float64")


def assert_gradients(errors, tol=TOL):
    bad = failures(errors, tol)
    assert not bad, "gradient check failed:\n" + bad


def test_linear(device):
    inputs = {
        "x": randn(device, 2, 3, 5, seed=0),
        "weight": randn(device, 5, 4, seed=1),
        "bias": randn(device, 4, seed=2),
    }
    assert_gradients(check_layer(linear_forward, linear_backward, inputs))


def test_layernorm(device):
    inputs = {
        "x": randn(device, 2, 3, 6, seed=0, scale=2.0, shift=0.5),
        "weight": randn(device, 6, seed=1, scale=0.3, shift=1.2),  # gains not one
        "bias": randn(device, 6, seed=2),
    }
    assert_gradients(check_layer(layernorm_forward, layernorm_backward, inputs))


def test_gelu(device):
    inputs = {"x": randn(device, 3, 7, seed=0, scale=2.0)}
    assert_gradients(check_layer(gelu_forward, gelu_backward, inputs))


def test_embedding_repeated_tokens(device):
    # token 3 appears three times: its gradient row must be the sum of all three
    ids = backend.to_device(np.array([[3, 1, 3], [0, 3, 2]]), device)
    inputs = {"wte": randn(device, 5, 4, seed=0), "wpe": randn(device, 6, 4, seed=1)}

    def forward(wte, wpe):
        return embedding_forward(ids, wte, wpe)

    assert_gradients(check_layer(forward, embedding_backward, inputs))


def test_embedding_adds_into_the_tied_head_gradient(device):
    ids = backend.to_device(np.array([[3, 1, 3], [0, 3, 2]]), device)
    wte, wpe = randn(device, 5, 4, seed=0), randn(device, 6, 4, seed=1)
    dh0 = randn(device, 2, 3, 4, seed=2)
    _, cache = embedding_forward(ids, wte, wpe)
    alone, _ = embedding_backward(dh0, cache)
    head = randn(device, 5, 4, seed=3)  # as if from the LM head
    expected = backend.to_numpy(head + alone)
    summed, _ = embedding_backward(dh0, cache, dwte=head)
    assert summed is head  # in place, no (V, C) copy
    assert np.allclose(backend.to_numpy(summed), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_dropout(device, p):
    inputs = {"x": randn(device, 4, 5, seed=0)}

    def forward(x):  # a fresh generator per call: the same mask every time
        return dropout_forward(x, p, backend.device_rng(device, 7))

    assert_gradients(check_layer(forward, dropout_backward, inputs))


def test_dropout_shared_mask(device):
    # noise_shape (B, 1, C): the K candidates of an example lose the same channels
    inputs = {"x": randn(device, 3, 4, 5, seed=0)}

    def forward(x):
        return dropout_forward(x, 0.4, backend.device_rng(device, 7), noise_shape=(3, 1, 5))

    assert_gradients(check_layer(forward, dropout_backward, inputs))
    y = backend.to_numpy(forward(inputs["x"])[0])
    dropped = y == 0
    assert dropped.any() and np.array_equal(dropped, np.broadcast_to(dropped[:, :1], y.shape))


def test_dropout_statistics():
    x = np.ones((200, 500))
    y, cache = dropout_forward(x, 0.25, np.random.default_rng(0))
    assert abs((y == 0).mean() - 0.25) < 0.01  # about p of the entries are dropped
    assert abs(y.mean() - 1.0) < 0.02  # inverted scaling keeps the expectation
    assert np.array_equal(np.unique(y), [0.0, 1 / 0.75])


def test_dropout_needs_a_generator():
    with pytest.raises(ValueError, match="random generator"):
        dropout_forward(np.ones(3), 0.1, None)


@pytest.mark.parametrize("attn_pdrop", [0.0, 0.2])
def test_attention(device, attn_pdrop):
    B, T, nh, hs = 2, 5, 3, 4
    inputs = {"qkv": randn(device, B, T, 3 * nh * hs, seed=0)}

    def forward(qkv):
        return attention_forward(qkv, nh, attn_pdrop, backend.device_rng(device, 3))

    assert_gradients(check_layer(forward, attention_backward, inputs))


def test_attention_is_causal(device):
    # changing the last position's q, k, v must not change any earlier output
    B, T, nh, hs = 1, 6, 2, 4
    qkv = randn(device, B, T, 3 * nh * hs, seed=0)
    y, _ = attention_forward(qkv, nh)
    qkv2 = qkv.copy()
    qkv2[:, -1] += 10.0
    y2, _ = attention_forward(qkv2, nh)
    y, y2 = backend.to_numpy(y), backend.to_numpy(y2)
    assert np.allclose(y[:, :-1], y2[:, :-1], rtol=0, atol=1e-12)
    assert not np.allclose(y[:, -1], y2[:, -1])


def test_masked_scores_never_reach_the_softmax():
    # a NaN where the mask forbids looking must not matter: where() drops it before exp
    scores = np.ones((1, 1, 3, 3))
    scores[..., ~causal_mask(3, 3, np)] = np.nan
    probs = causal_softmax.plain(scores)
    assert np.isfinite(probs).all() and (probs[..., ~causal_mask(3, 3, np)] == 0).all()


def test_attention_matches_a_loop_over_heads():
    # an independent, deliberately naive version: one head and one query at a time
    B, T, nh, hs = 2, 4, 2, 3
    C = nh * hs
    qkv = np.random.default_rng(0).standard_normal((B, T, 3 * C))
    y, _ = attention_forward(qkv, nh)
    expected = np.zeros((B, T, C))
    for b in range(B):
        for head in range(nh):
            cols = slice(head * hs, (head + 1) * hs)
            q, k, v = (qkv[b, :, i * C : (i + 1) * C][:, cols] for i in range(3))
            for t in range(T):
                scores = q[t] @ k[: t + 1].T / np.sqrt(hs)
                w = np.exp(scores - scores.max())
                expected[b, t, cols] = (w / w.sum()) @ v[: t + 1]
    assert np.allclose(y, expected, atol=1e-12)


def test_cross_entropy_with_mask(device):
    xp = backend.module_for(device)
    targets = xp.asarray([[1, 4, 0], [2, 2, 3]])
    mask = xp.asarray([[1, 0, 1], [1, 1, 1]])  # one ignored position
    inputs = {"logits": randn(device, 2, 3, 5, seed=0, scale=3.0)}

    def forward(logits):
        return cross_entropy_forward(logits, targets, mask)

    assert_gradients(check_layer(forward, cross_entropy_backward, inputs))
    loss, cache = forward(inputs["logits"])
    dlogits = backend.to_numpy(cross_entropy_backward(1.0, cache))
    assert np.all(dlogits[0, 1] == 0.0), "an ignored position must get no gradient"


def test_cross_entropy_weights_average_per_sequence():
    # weights mask / (tokens in the sequence): the mean of the per-sequence means
    logits = np.random.default_rng(0).standard_normal((2, 4, 6))
    targets = np.array([[1, 2, 3, 4], [5, 0, 1, 2]])
    mask = np.array([[1, 1, 1, 1], [1, 0, 0, 0]])
    loss, _ = cross_entropy_forward(logits, targets, mask / mask.sum(axis=1, keepdims=True))
    first, _ = cross_entropy_forward(logits[:1], targets[:1])
    second, _ = cross_entropy_forward(logits[1:, :1], targets[1:, :1])
    assert np.isclose(loss, (first + second) / 2)


def test_squared_error(device):
    targets = randn(device, 6, seed=3)
    inputs = {"predictions": randn(device, 6, seed=0, scale=2.0)}

    def forward(predictions):
        return squared_error_forward(predictions, targets)

    assert_gradients(check_layer(forward, squared_error_backward, inputs))
    loss, _ = forward(inputs["predictions"])
    diff = backend.to_numpy(inputs["predictions"] - targets)
    assert np.isclose(float(loss), np.mean(diff**2))


def test_cross_entropy_value_and_stability():
    logits = np.array([[1000.0, 0.0, -1000.0], [2.0, 1.0, 0.0]])  # overflow for a naive softmax
    targets = np.array([0, 2])
    loss, _ = cross_entropy_forward(logits, targets)
    log_softmax_row2 = np.array([2.0, 1.0, 0.0]) - np.log(np.exp([2.0, 1.0, 0.0]).sum())
    assert np.isclose(loss, (0.0 - log_softmax_row2[2]) / 2)


def test_cross_entropy_rejects_empty_mask():
    with pytest.raises(ValueError, match="empty mask"):
        cross_entropy_forward(np.zeros((2, 3)), np.zeros(2, dtype=int), np.zeros(2))
