"""Every fast path (minigpt1/fast/) against the plain function it replaces, forward and backward.

Each case runs a layer (or the optimizer) twice on the same inputs: once with no fast path
registered, once with only its own fast paths, and compares every output and gradient: each
value within atol + rtol * (the tensor's largest magnitude), since sums over rows may cancel;
float32 with rtol 1e-5 / atol 1e-6 unless a comment says why not, float64 1e-12. The CPU
fast paths run here; the CUDA ones under the `gpu` marker, on a GPU (tests/gpu/run.sh).
A fast path without a case fails test_every_fast_path_has_a_case.
"""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.backend import FAST_PATHS, PLAIN
from minigpt1.fast import adamw, attention, gelu
from minigpt1.fast.attention import QUERY_BLOCK, attention_forward_by_blocks
from minigpt1.fast.batch_threads import in_fixed_parts
from minigpt1.gradcheck import check_layer, failures
from minigpt1.layers import (
    attention_backward,
    attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    matrix_product,
)
from minigpt1.layers.attention import causal_softmax, queries_keys_values
from minigpt1.layers.cross_entropy import target_log_probs
from minigpt1.model.block import BLOCK_PARAM_SHAPES, block_decode
from minigpt1.training.dropout_streams import DropoutStreams
from minigpt1.training.optim import AdamW
from tests.test_threads import on_threads

FAST = Path(__file__).resolve().parents[1] / "minigpt1" / "fast"
DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}

CASES = []  # (names, run, float32 tolerance): run(device, dtype) -> {output name: array}


def case(*names, **float32_tol):
    """Register run(device, dtype) as the case of the fast paths `names` (run together)."""

    def add(run):
        CASES.append((names, run, float32_tol))
        return run

    return add


def host(*shape, seed, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def on(device, array, dtype=None):
    return backend.to_device(np.asarray(array), device, dtype)


@case("gelu_forward")
@case("gelu_backward")
def run_gelu(device, dtype):
    x = host(3, 5, 67, seed=0, scale=2.0)
    x.flat[:7] = [-8.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 8.0]  # both tails, and around 0
    y, cache = gelu_forward(on(device, x, dtype))
    dx = gelu_backward(on(device, host(*x.shape, seed=1), dtype), cache)
    return {"y": y, "tanh_u": cache.tanh_u, "dx": dx}


@case("layernorm_forward")
@case("layernorm_backward")
def run_layernorm(device, dtype):
    outputs = {}
    for C in (1, 3, 67, 767, 3072, 5000):  # one channel; fewer, and more, than a GPU block
        x = host(4, 5, C, seed=C, scale=2.0, shift=3.0)  # off-centre: mu matters
        weight, bias = host(C, seed=1, scale=0.1, shift=1.0), host(C, seed=2, scale=0.1)
        y, cache = layernorm_forward(*(on(device, a, dtype) for a in (x, weight, bias)), 1e-5)
        grads = layernorm_backward(on(device, host(*x.shape, seed=3), dtype), cache)
        outputs.update({f"{name} C={C}": value for name, value in zip(
            ("y", "xhat", "rstd", "dx", "dweight", "dbias"), (y, *cache[:2], *grads), strict=True)})
    return outputs


@case("causal_softmax")
def run_causal_softmax(device, dtype):
    outputs = {}
    shapes = [(2, 3, 5, 5), (2, 2, 1, 7), (1, 2, 4, 9), (1, 1, 3, 700), (3, 1, 1, 1)]
    for shape in shapes:  # square, one new token, new tokens after a past, long rows, one key
        # scores up to 80: exp(80) overflows float32, only the max-shifted form survives
        scores = np.random.default_rng(7).uniform(-80.0, 80.0, shape)
        outputs[f"probs {shape}"] = causal_softmax(on(device, scores, dtype))
    return outputs


def attention_inputs(device, dtype, T, seed=0, B=2, nh=2, hs=4):
    return on(device, host(B, T, 3 * nh * hs, seed=seed), dtype), nh


@case("attention_forward", "attention_backward")
def run_attention(device, dtype):
    outputs = {}
    for T in (5, QUERY_BLOCK, QUERY_BLOCK + 3):  # one block of queries, one full, two
        qkv, nh = attention_inputs(device, dtype, T)
        y, cache = attention_forward(qkv, nh)
        dqkv = attention_backward(on(device, host(*y.shape, seed=1), dtype), cache)
        outputs.update({f"y T={T}": y, f"probs T={T}": cache.probs, f"dqkv T={T}": dqkv})
    # generation: 3 new tokens after a past of 6, the keys and values handed on
    qkv, nh = attention_inputs(device, dtype, 9)
    _, cache = attention_forward(qkv[:, :6], nh)
    y, cache = attention_forward(qkv[:, 6:], nh, past=(cache.k, cache.v))
    outputs.update({"y after past": y, "probs after past": cache.probs, "k": cache.k,
                    "v": cache.v})
    return outputs


# float32: the unshifted exp rounds log-probabilities to eps * |log sum exp(z)| (~5e-6 here)
@case("target_log_probs", atol=1e-5)
def run_cross_entropy(device, dtype):
    far = 100.0 if dtype == np.float32 else 1000.0
    logits = host(4, 7, seed=4, scale=3.0)
    logits[1] += far  # exp overflows unshifted
    logits[2] -= far  # exp underflows to a zero row sum unshifted
    targets, mask = on(device, [2, 0, 6, 3]), on(device, [1.0, 1.0, 1.0, 0.0])  # last ignored
    logits = on(device, logits, dtype)
    logp, exps, sumexp = target_log_probs(logits, targets)
    loss, cache = cross_entropy_forward(logits.reshape(2, 2, 7), targets.reshape(2, 2), mask)
    return {"log p(target)": logp, "softmax": exps / sumexp[:, None], "loss": loss,
            "dlogits": cross_entropy_backward(0.7, cache)}


@case("scatter_add")
def run_embedding(device, dtype):
    ids = on(device, [[3, 1, 3, 3], [0, 3, 2, 1]])  # token 3 four times: its rows add up
    wte, wpe = on(device, host(5, 6, seed=0), dtype), on(device, host(8, 6, seed=1), dtype)
    h0, cache = embedding_forward(ids, wte, wpe, start=2)
    dh0 = on(device, host(*h0.shape, seed=2), dtype)
    head = on(device, host(5, 6, seed=3), dtype)  # as if from the tied LM head
    strided = on(device, host(6, 5, seed=4), dtype).T  # (5, 6), not contiguous
    return {"h0": h0, "alone": embedding_backward(dh0, cache)[0],
            "into the head's": embedding_backward(dh0, cache, head)[0],
            "into a strided": embedding_backward(dh0, cache, strided)[0],
            "dwpe": embedding_backward(dh0, cache)[1]}


@case("adamw_update")
def run_adamw(device, dtype):
    # a matrix (decays) over more than two CPU slices of 65,536, and a vector (never decays)
    params = {"w": on(device, host(3, 43_733, seed=0, scale=0.02), dtype),
              "b": on(device, host(1001, seed=1, scale=0.02), dtype)}
    opt = AdamW(params, lr=1e-2, eps=1e-8, weight_decay=0.1)
    for step in range(3):
        grads = {name: host(*p.shape, seed=10 + step) for name, p in params.items()}
        grads["w"].flat[:5] = 0.0  # with v = 0 too: eps alone sets these steps
        opt.step({name: on(device, g, dtype) for name, g in grads.items()})
    return {**params, **{f"m.{n}": m for n, m in opt.m.items()},
            **{f"v.{n}": v for n, v in opt.v.items()}}


@case("block_decode")
def run_block_decode(device, dtype):
    C, nh = 12, 3
    gains = {"ln_1.weight", "ln_2.weight"}  # near 1, the rest near 0
    p = {name: on(device, host(*shape(C), seed=i, scale=0.3, shift=float(name in gains)), dtype)
         for i, (name, shape) in enumerate(BLOCK_PARAM_SHAPES.items())}
    x = on(device, host(2, QUERY_BLOCK + 4, C, seed=20), dtype)  # (B, T, C)
    P = QUERY_BLOCK + 1  # a prompt of two blocks of queries, then one, two and one new tokens
    outputs, past = {}, None
    for a, b in [(0, P), (P, P + 1), (P + 1, P + 3), (P + 3, P + 4)]:
        h, *past = block_decode(x[:, a:b], p, nh, 1e-5, past)
        outputs.update({f"h [{a}, {b})": h, f"k [0, {b})": past[0], f"v [0, {b})": past[1]})
    return outputs


@case("matrix_product")
def run_matrix_product(device, dtype):
    outputs = {}
    with in_fixed_parts(2):  # as in a training step of one shard
        # N cut in 4 blocks (M the largest; N the largest, one block short; N and K tied),
        # K cut (the largest, one block short), a transposed operand, a product too small to cut
        for M, K, N in [(4099, 96, 96), (96, 96, 4099), (160, 515, 515), (96, 4099, 96),
                        (8, 8, 8)]:
            a, b = host(M, K, seed=M), host(N, K, seed=N).T
            outputs[f"{M}x{K}x{N}"] = matrix_product(on(device, a, dtype), on(device, b, dtype))
    return outputs


class Counted:
    """A fast path that counts its calls: a case must reach the path it tests."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def run_with(monkeypatch, paths, run, device, dtype):
    monkeypatch.setattr(backend, "FAST_PATHS", paths)
    try:
        return {name: backend.to_numpy(value) for name, value in run(device, dtype).items()}
    finally:
        monkeypatch.undo()


def registered_cases():
    """(names, run, tolerance, device) for each case with a fast path on that device."""
    for names, run, tol in CASES:
        for device in backend.DEVICES:
            if any((name, device) in FAST_PATHS for name in names):
                marks = [pytest.mark.gpu] if device == "cuda" else []
                yield pytest.param(names, run, tol, device, marks=marks,
                                   id=f"{'+'.join(names)}-{device}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("names, run, float32_tol, device", list(registered_cases()))
def test_fast_path_equals_plain(monkeypatch, names, run, float32_tol, device, dtype):
    if device == "cuda" and not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs these on one)")
    fast = {(name, device): Counted(FAST_PATHS[name, device])
            for name in names if (name, device) in FAST_PATHS}
    want = run_with(monkeypatch, {}, run, device, dtype)
    got = run_with(monkeypatch, fast, run, device, dtype)
    assert all(path.calls for path in fast.values()), f"the case never ran {list(fast)}"
    tol = {**TOL[dtype], **float32_tol} if dtype == np.float32 else TOL[dtype]
    for name in want:
        assert got[name].dtype == want[name].dtype == dtype, name
        scale = float(np.abs(want[name]).max(initial=0.0))
        np.testing.assert_allclose(got[name], want[name], rtol=0, err_msg=name,
                                   atol=tol["atol"] + tol["rtol"] * scale)


def names_registered_in(path):
    """The names of the register_fast_path(name, ...) calls in a source file; all literal."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_fast_path":
            name = node.args[0]
            assert isinstance(name, ast.Constant), f"{path.name}: name the plain function literally"
            names.add(name.value)
    return names


def test_every_fast_path_has_a_case():
    """A fast path registered anywhere in minigpt1/fast/, on any device, has a case above."""
    in_sources = set().union(*(names_registered_in(path) for path in FAST.glob("*.py")))
    registered = {name for name, _ in FAST_PATHS} | in_sources
    covered = {name for names, _, _ in CASES for name in names}
    assert registered - covered == set(), "fast paths without a case in this file"
    assert {name for name, _ in FAST_PATHS} <= in_sources  # the scan sees every registration
    assert registered <= set(PLAIN), "a fast path must replace a function marked @fast_path"


# ---- the fast paths' own behaviour ---------------------------------------------------------


@pytest.mark.parametrize("attn_pdrop", [0.0, 0.2])
def test_attention_by_blocks_gradients(attn_pdrop):
    # 7 queries in blocks of 3: two full blocks and a last, shorter one; dropout per block
    qkv = host(2, 7, 3 * 2 * 3, seed=0)

    def forward(qkv):
        return attention_forward_by_blocks(qkv, 2, attn_pdrop, np.random.default_rng(3), block=3)

    bad = failures(check_layer(forward, attention_backward, {"qkv": qkv}), 1e-7)
    assert not bad, "gradient check failed:\n" + bad


@pytest.mark.parametrize("block", [1, 4, 128])
def test_attention_by_blocks_equals_the_full_matrix(block):
    qkv, dy = host(2, 9, 3 * 3 * 4, seed=1), host(2, 9, 3 * 4, seed=2)
    y, cache = attention_forward.plain(qkv, 3)
    y_blocks, cache_blocks = attention_forward_by_blocks(qkv, 3, block=block)
    past = (cache.k[:, :, :5], cache.v[:, :, :5])  # the last 4 tokens after a past of 5
    y_past, cache_past = attention_forward_by_blocks(qkv[:, 5:], 3, past=past, block=block)
    for ours, reference in [
        (y_blocks, y),
        (cache_blocks.probs, cache.probs),  # what attention maps show
        (attention_backward(dy, cache_blocks), attention_backward.plain(dy, cache)),
        (y_past, y[:, 5:]),
        (cache_past.probs, cache.probs[:, :, 5:]),
    ]:
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_lone_shards_head_groups_give_the_same_numbers_on_1_2_and_4_threads(dtype,
                                                                            monkeypatch):
    # 6 heads in 4 groups (1 or 2 heads each), 7 queries in blocks of 3, dropout on: the
    # groups take their share of masks drawn for all heads at once
    monkeypatch.setattr(attention, "MIN_GROUPED_SCORES", 1)
    qkv, dy = host(1, 7, 3 * 6 * 4, seed=3).astype(dtype), host(1, 7, 6 * 4, seed=4).astype(dtype)

    def run(threads):
        with in_fixed_parts(threads):
            y, cache = attention_forward_by_blocks(qkv, 6, 0.3, DropoutStreams(5, 2, range(1)),
                                                   block=3)
            return y, cache.probs, attention_backward(dy, cache), len(cache.groups)

    y, probs, dqkv, groups = run(1)
    assert groups == 4
    for threads in (2, 4):
        for ours, reference in zip(run(threads)[:3], (y, probs, dqkv), strict=True):
            np.testing.assert_array_equal(ours, reference)
    # the heads at once, the same masks: equal to rounding
    y_all, cache_all = attention_forward_by_blocks(qkv, 6, 0.3, DropoutStreams(5, 2, range(1)),
                                                   block=3)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for ours, reference in [(y, y_all), (probs, cache_all.probs),
                            (dqkv, attention_backward(dy, cache_all))]:
        np.testing.assert_allclose(ours, reference, rtol=0, atol=tol)


def test_a_lone_shards_head_groups_pass_the_gradient_check(monkeypatch):
    monkeypatch.setattr(attention, "MIN_GROUPED_SCORES", 1)
    qkv = host(1, 7, 3 * 6 * 3, seed=0)

    def forward(qkv):
        with in_fixed_parts(2):
            return attention_forward_by_blocks(qkv, 6, 0.2, DropoutStreams(5, 2, range(1)),
                                               block=3)

    bad = failures(check_layer(forward, attention_backward, {"qkv": qkv}), 1e-7)
    assert not bad, "gradient check failed:\n" + bad


def test_adamw_in_parts_on_threads_gives_the_numbers_of_one_thread(monkeypatch):
    # 5,003 elements cut in 1, 2 or 4 parts of slices of 1,000 (the last ones shorter)
    monkeypatch.setattr(adamw, "MIN_SPLIT", 1)
    monkeypatch.setattr(adamw, "THREAD_SLICE", 1000)

    def update():
        p, m, v = host(5003, seed=1), host(5003, seed=2), host(5003, seed=3, scale=0.1) ** 2
        for t in (1, 2):
            adamw.adamw_update_in_slices(p, host(5003, seed=3 + t), m, v, t, 1e-2,
                                         (0.9, 0.999), 1e-8, 0.1)
        return p, m, v

    one = on_threads(1, update)
    for threads in (2, 4):
        for ours, reference in zip(on_threads(threads, update), one, strict=True):
            np.testing.assert_array_equal(ours, reference)


def test_a_lone_shards_gelu_in_row_parts_gives_the_numbers_of_the_whole(monkeypatch):
    # 7 rows in 4 parts on 2 and 4 threads (whole on 1); one input a transposed (non-contiguous)
    # view
    monkeypatch.setattr(gelu, "MIN_SPLIT", 1)
    x, dy = host(1, 7, 12, seed=6, scale=3.0), host(12, 7, seed=7).T[None]
    y, cache = gelu.gelu_forward_in_place(x)
    dx = gelu.gelu_backward_in_place(dy, cache)
    for threads in (1, 2, 4):
        with in_fixed_parts(threads):
            y_parts, cache_parts = gelu.gelu_forward_in_place(x)
            dx_parts = gelu.gelu_backward_in_place(dy, cache_parts)
        for ours, reference in [(y_parts, y), (cache_parts.tanh_u, cache.tanh_u), (dx_parts, dx)]:
            np.testing.assert_array_equal(ours, reference)
    np.testing.assert_allclose(y, gelu_forward.plain(x)[0], rtol=1e-12, atol=1e-15)


def test_attention_backward_refuses_a_past():
    qkv = host(1, 4, 3 * 2 * 2, seed=0)
    _, cache = attention_forward(qkv[:, :3], 2)
    for forward, backward in [(attention_forward, attention_backward),
                              (attention_forward.plain, attention_backward.plain)]:
        _, with_past = forward(qkv[:, 3:], 2, past=(cache.k, cache.v))
        with pytest.raises(ValueError, match="key/value cache"):
            backward(host(1, 1, 4, seed=1), with_past)


@pytest.mark.parametrize("dtype, far", [(np.float32, 30.0), (np.float64, 300.0)])
def test_attention_shifts_only_the_sequences_whose_scores_could_leave_exps_range(dtype, far):
    # 3 sequences, 16 queries, heads of 4: the second's scores reach about far^2 / 2 (exp
    # overflows unshifted), the third holds a NaN; the first and the last are small
    qkv = host(4, 16, 3 * 2 * 4, seed=6)
    qkv[1] *= far
    qkv[2, 3, 0] = np.nan
    q, k, _ = queries_keys_values(qkv.astype(dtype), 2)
    assert attention.unshifted_sequences(q * 0.5, k).tolist() == [True, False, False, True]
    y, cache = attention_forward_by_blocks(qkv.astype(dtype), 2, block=8)
    y_plain, cache_plain = attention_forward.plain(qkv, 2)
    tol = TOL[dtype]
    for ours, reference in [(y, y_plain), (cache.probs, cache_plain.probs)]:
        np.testing.assert_allclose(ours[[0, 1, 3]], reference[[0, 1, 3]], **tol)
        assert np.isnan(ours[2]).any()  # a NaN is never hidden
    # generation's single query is always shifted: too few scores to pay for the check
    assert attention.unshifted_sequences(q[:, :, -1:], k) is None


@pytest.mark.parametrize("dtype, far", [(np.float32, 100.0), (np.float64, 1000.0)])
def test_cross_entropy_shifts_only_the_rows_that_need_it(dtype, far):
    logits = host(3, 7, seed=4, scale=3.0)
    logits[1] += far  # would overflow unshifted
    logits[2] -= far  # would underflow to a zero sum
    _, exps, _ = FAST_PATHS["target_log_probs", "cpu"](logits.astype(dtype), np.array([2, 0, 6]))
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(exps[0], np.exp(logits[0]), rtol=rtol)  # taken unshifted
    shifted = logits[1:] - logits[1:].max(axis=1, keepdims=True)
    np.testing.assert_allclose(exps[1:], np.exp(shifted), rtol=rtol)  # shifted by the row max


def test_cross_entropy_gradients_through_shifted_and_unshifted_rows():
    logits = host(3, 5, seed=5, scale=3.0)
    logits[1] += 1000.0  # exp overflows float64 unshifted: this row is redone, shifted
    targets = np.array([1, 4, 0])

    def forward(logits):
        return cross_entropy_forward(logits, targets)

    bad = failures(check_layer(forward, cross_entropy_backward, {"logits": logits}), 1e-7)
    assert not bad, "gradient check failed:\n" + bad


# ---- the registry ------------------------------------------------------------------------


def test_a_call_runs_the_fast_path_of_its_first_arguments_device(monkeypatch):
    calls = []
    monkeypatch.setattr(backend, "FAST_PATHS", {("causal_softmax", "cpu"): calls.append})
    scores = np.zeros((1, 1, 2, 2))
    causal_softmax(scores)
    assert calls == [scores]  # a NumPy array: the CPU fast path
    monkeypatch.setattr(backend, "FAST_PATHS", {("causal_softmax", "cuda"): calls.append})
    probs = causal_softmax(scores)  # none for the CPU: the plain body
    assert len(calls) == 1 and np.array_equal(probs, [[[[1.0, 0.0], [0.5, 0.5]]]])


def test_plain_bodies_stay_readable():
    assert causal_softmax.plain is PLAIN["causal_softmax"]
    source = inspect.getsource(attention_backward)  # what lesson 03 prints: the math itself
    assert "def attention_backward" in source and "(dprobs * probs).sum" in source
    assert "where(causal_mask" in inspect.getsource(causal_softmax)


def test_the_registry_refuses_an_unknown_device_and_a_second_registration():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.register_fast_path("causal_softmax", "tpu", print)
    with pytest.raises(ValueError, match="registered already"):
        backend.register_fast_path("causal_softmax", "cpu", print)

    def another(scores):
        return scores

    another.__name__ = "causal_softmax"  # fast paths find plain functions by name
    with pytest.raises(ValueError, match="two plain functions named 'causal_softmax'"):
        backend.fast_path(another)
