"""Generation: the KV cache changes nothing but speed; filters keep the right tokens."""

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.model.generate import generate, sample_next, top_k_filter, top_p_filter

CFG = GPTConfig(vocab_size=64, n_ctx=16, n_embd=32, n_layer=2, n_head=4)


def test_kv_cache_logits_equal_full_recompute(device):
    model = GPT(CFG, seed=0, device=device, dtype="float64")
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(2, 12))
    full = backend.to_numpy(model.forward(ids))  # (B, T, V) in one pass
    logits, past = model.decode(ids[:, :5])  # a prompt of 5, then one token at a time
    steps = [backend.to_numpy(logits)]
    for t in range(5, 12):
        logits, past = model.decode(ids[:, t : t + 1], past)
        steps.append(backend.to_numpy(logits))
    assert np.abs(np.concatenate(steps, axis=1) - full).max() < 1e-10


def test_generate_with_and_without_cache_agree():
    model = GPT(CFG, seed=1)
    prompt = [[3, 1, 4, 1, 5]]
    # 20 new tokens: the window of 16 fills and starts to slide
    with_cache = generate(model, prompt, 20, temperature=0.8, top_k=10, seed=7)
    without = generate(model, prompt, 20, temperature=0.8, top_k=10, seed=7, use_cache=False)
    assert with_cache.shape == (1, 25)
    assert np.array_equal(with_cache, without)
    assert np.array_equal(with_cache[:, :5], prompt)


def test_greedy_is_argmax_and_seeded_sampling_repeats():
    model = GPT(CFG, seed=2)
    greedy = generate(model, [1, 2, 3], 4, temperature=0)
    ids = np.array([[1, 2, 3]])
    for _ in range(4):
        ids = np.concatenate([ids, model.forward(ids)[:, -1].argmax(-1)[:, None]], axis=1)
    assert np.array_equal(greedy, ids)
    a = generate(model, [1, 2, 3], 8, seed=5)
    assert np.array_equal(a, generate(model, [1, 2, 3], 8, seed=5))


def test_long_prompt_is_cut_from_the_left():
    model = GPT(CFG)
    with pytest.warns(UserWarning, match="cut to its last 16"):
        out = generate(model, list(range(20)), 1, temperature=0)
    assert np.array_equal(out[0, :16], np.arange(4, 20))


def test_top_k_keeps_exactly_k():
    logits = np.array([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = np.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert np.isfinite(top_k_filter(logits, 99)).all()


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([[0.05, 0.5, 0.3, 0.15]])
    logits = np.log(probs)
    # 0.5 alone < 0.7; 0.5 + 0.3 = 0.8 >= 0.7: keep those two
    assert np.isfinite(top_p_filter(logits, 0.7)).tolist() == [[False, True, True, False]]
    # a tiny p still keeps the most likely token: never every token masked
    assert np.isfinite(top_p_filter(logits, 1e-9)).tolist() == [[False, True, False, False]]
    assert np.isfinite(top_p_filter(logits, 1.0)).all()


def test_sampling_follows_the_filtered_distribution():
    logits = np.log(np.array([[0.1, 0.6, 0.3]]))
    rng = np.random.default_rng(0)
    draws = [sample_next(logits, rng, top_p=0.8)[0] for _ in range(4000)]
    counts = np.bincount(draws, minlength=3) / len(draws)
    assert counts[0] == 0  # filtered out
    assert abs(counts[1] - 2 / 3) < 0.03 and abs(counts[2] - 1 / 3) < 0.03  # renormalised


def test_bad_sampling_arguments():
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        top_k_filter(np.zeros((1, 4)), 0)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(np.zeros((1, 4)), 0.0)
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(GPT(CFG), [], 3)
