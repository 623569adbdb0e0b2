"""Lesson 4 (generative pre-training): counting parameters, the learning-rate schedule, top-k.

Each exercise's check compares the student's function with the library on inputs it builds
itself from a fixed seed, and says which common mistake the answer looks like when it can.
The solutions below are the reference answers: try the exercises before reading them.
"""

import math

import numpy as np

from minigpt1 import parameter_count
from minigpt1.config import GPTConfig
from minigpt1.model.generate import top_k_filter
from minigpt1.training.optim import warmup_cosine

from .base import Exercise

# ---- 1. the parameter count of any GPT-1-shaped model ------------------------------------


def param_count_solution(vocab_size, n_ctx, n_embd, n_layer):
    """Trainable values of a GPT-1 model: embeddings + n_layer blocks; the tied head adds 0."""
    C = n_embd
    embeddings = vocab_size * C + n_ctx * C  # We (V, C) and Wp (n_ctx, C)
    attention = (C * 3 * C + 3 * C) + (C * C + C)  # c_attn and c_proj, weights and biases
    mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)  # c_fc and c_proj
    layernorms = 2 * (2 * C)  # ln_1 and ln_2, a gain and a bias each
    return embeddings + n_layer * (attention + mlp + layernorms)  # = ... + n_layer (12C^2 + 13C)


PARAM_CONFIGS = [(40478, 512, 768, 12), (2048, 128, 128, 4), (5000, 64, 96, 3), (300, 20, 24, 1)]


def check_param_count(answer):
    for V, n_ctx, C, L in PARAM_CONFIGS:
        cfg = GPTConfig(vocab_size=V, n_ctx=n_ctx, n_embd=C, n_layer=L, n_head=4)
        expected = parameter_count(cfg)
        got = answer(V, n_ctx, C, L)
        shown = f"vocab_size={V}, n_ctx={n_ctx}, n_embd={C}, n_layer={L}"
        assert got is not None, "param_count returned None: return the number"
        if got == expected:
            continue
        hint = f"{shown}: you counted {got:,}, the model has {expected:,}"
        if got == expected + V * C:
            hint += ". The LM head is tied to the token embedding: it adds no parameter"
        elif got == expected - n_ctx * C:
            hint += ". Did you forget the position embedding Wp (n_ctx x n_embd)?"
        elif got == expected - L * 13 * C or got == expected - L * 9 * C:
            hint += ". Count the biases and the LayerNorm gains and biases too"
        elif (expected - got) % L == 0 and got > V * C:
            hint += (f". The gap is {(expected - got) // L:,} per block: go through the 12 "
                     "tensors of a block one by one (parameter_shapes lists them)")
        raise AssertionError(hint)


# ---- 2. the warm-up + cosine learning rate -----------------------------------------------


def lr_at_solution(step, max_lr, warmup_steps, total_steps, min_lr):
    """Linear from 0 to max_lr over the warm-up, then half a cosine down to min_lr."""
    if step < warmup_steps:
        return max_lr * step / warmup_steps  # step 0 gets lr 0, as in GPT-1's code
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 -> 1 after warm-up
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def check_lr_at(answer):
    schedules = [(2.5e-4, 2000, 100_000, 0.0), (2e-3, 300, 5000, 2e-4), (1e-3, 10, 50, 1e-4)]
    for max_lr, warmup, total, min_lr in schedules:
        named = f"max_lr={max_lr}, warmup_steps={warmup}, total_steps={total}, min_lr={min_lr}"
        for step in sorted({0, 1, warmup // 2, warmup - 1, warmup, warmup + 1,
                            (warmup + total) // 2, total - 1, total, total + 7}):
            expected = warmup_cosine(step, max_lr, warmup, total, min_lr)
            got = answer(step, max_lr, warmup, total, min_lr)
            assert got is not None, "lr_at returned None: return the learning rate"
            if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15):
                continue
            if step == 0:
                where = "the first update (step 0) has lr 0: the warm-up starts from zero"
            elif step < warmup:
                where = "during the warm-up the lr grows linearly: max_lr * step / warmup_steps"
            elif step == warmup:
                where = "the warm-up ends exactly at max_lr"
            elif step >= total:
                where = "after total_steps the lr stays at min_lr"
            else:
                where = ("after the warm-up the cosine goes from max_lr to min_lr as the "
                         "progress (step - warmup_steps) / (total_steps - warmup_steps) "
                         "goes from 0 to 1")
            raise AssertionError(f"{named}, step {step}: got {got}, expected {expected}; {where}")


# ---- 3. top-k filtering --------------------------------------------------------------------


def top_k_solution(logits, k):
    """Keep the k largest logits of each row (B, V); every other one becomes -inf."""
    kth_largest = np.sort(logits, axis=-1)[:, -k][:, None]  # (B, 1)
    return np.where(logits >= kth_largest, logits, -np.inf)  # a new array: logits untouched


def check_top_k(answer):
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(3, 50))  # (B, V) distinct values: no ties
    for k in (1, 5, 17, 50):
        before = logits.copy()
        got = answer(logits, k)
        expected = top_k_filter(logits, k)
        assert got is not None, "top_k returned None: return the filtered logits"
        got = np.asarray(got, dtype=np.float64)
        assert np.array_equal(logits, before), "top_k changed its input: return a new array"
        assert got.shape == expected.shape, (
            f"k={k}: the result has shape {got.shape}, expected {expected.shape} (B, V)")
        if (got == 0).sum() > (expected == 0).sum():
            raise AssertionError(f"k={k}: filtered entries must be -inf, not 0: a logit of 0 "
                                 "still has probability e^0 / Z after the softmax")
        if not np.all(np.isfinite(got) | (got == -np.inf)):
            raise AssertionError(f"k={k}: filtered entries must be -inf (so that exp gives 0)")
        kept = np.isfinite(got).sum(axis=-1)  # (B,)
        assert np.all(kept == k), f"k={k}: each row should keep {k} logits, yours keep {kept}"
        assert np.array_equal(got, expected), (
            f"k={k}: you kept the wrong logits, or changed their values: keep the k "
            "largest of each row as they are")


EXERCISES = {
    "pretraining_param_count": Exercise(solution=param_count_solution, check=check_param_count),
    "pretraining_lr_at": Exercise(solution=lr_at_solution, check=check_lr_at),
    "pretraining_top_k": Exercise(solution=top_k_solution, check=check_top_k),
}
