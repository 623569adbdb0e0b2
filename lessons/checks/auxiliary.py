"""Exercises of lesson 06_auxiliary_objective: L1's weights on task inputs, and L3 from its parts.

    auxiliary_lm_weights   how much each next-token target counts in L1 (each sequence's mean)
    auxiliary_l3           L3 = L2 + lambda L1 and its gradients, from those of L2 and L1

Each check builds a small float64 task model with a fixed seed and compares the student's
answer with TaskModel.finetune_loss_and_grads, which computes L3 in one pass.
"""

import numpy as np

from minigpt1.config import GPTConfig
from minigpt1.finetuning.task_model import TaskModel
from minigpt1.finetuning.transformations import EncodedExample, TaskSpec, make_batch, transform
from minigpt1.model.gpt import GPT

from .base import Exercise

V = 40  # ordinary tokens; the specials are V, V + 1, V + 2


def small_task(seed=0):
    """A float64 entailment model with parameters moved off their tidy initial values, and a
    batch of three examples of different lengths (so that padding is exercised)."""
    rng = np.random.default_rng(seed)
    cfg = GPTConfig.preset("tiny", vocab_size=V + 3, n_layer=1, n_embd=32, n_head=2)
    spec = TaskSpec("ent", "entailment", ("no", "yes"), "accuracy")
    model = TaskModel(GPT(cfg, seed=0, dtype="float64"), spec, seed=1)
    for p in model.params.values():
        p += rng.normal(0, 0.05, size=p.shape)
    encoded = []
    for n, label in ((3, 1), (6, 0), (4, 1)):
        segments = [list(rng.integers(0, V, size=n)), list(rng.integers(0, V, size=n + 1))]
        sequences = transform(spec.kind, segments, V, V + 1, V + 2)
        encoded.append(EncodedExample(tuple(map(tuple, sequences)), label, False))
    return model, make_batch(encoded)


# ---- 1. the weights of L1 ------------------------------------------------------------------


def lm_weights(mask):
    """mask (N, T), 1 on real tokens -> weights (N, T-1) of the N*(T-1) next-token targets.

    Target t is token t+1, so it counts when mask[:, t+1] is 1; each sequence's weights sum
    to 1 (its mean), and L1 is the mean of the sequences' means."""
    targets = mask[:, 1:]  # (N, T-1): real tokens after the first
    per_sequence = targets / targets.sum(axis=1, keepdims=True)  # each row sums to 1
    return per_sequence / len(mask)  # the mean over the N sequences


def check_lm_weights(answer):
    model, batch = small_task()
    B, S, T = batch.ids.shape
    ids, mask = batch.ids.reshape(B * S, T), batch.mask.reshape(B * S, T).astype(np.float64)
    got = answer(mask.copy())
    assert got is not None, "return the weights, an array of shape (N, T-1)"
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == (B * S, T - 1), f"expected shape {(B * S, T - 1)}, got {got.shape}"
    assert np.all(got[mask[:, 1:] == 0] == 0), "padding must get weight 0"
    h, _ = model.gpt.body_forward(ids)  # (N, T, C)
    # lm_head_forward divides by the sum of the weights: only their proportions matter
    l1, _ = model.gpt.lm_head_forward(h[:, :-1], ids[:, 1:], got)
    expected = model.finetune_loss(batch, lm_coef=0.5)[2]
    assert np.isclose(float(l1), expected, rtol=1e-10), (
        f"L1 with your weights is {float(l1):.6f}, the library's {expected:.6f}: a short "
        "sequence must count as much as a long one (average within each sequence first)")


# ---- 2. L3 from L2 and L1 ------------------------------------------------------------------


def combine_l3(l2, grads_l2, l1, grads_l1, lam):
    """(L3, grads of L3) from L2, L1 and their gradient dicts; grads_l1 has no clf.* entries
    (the language-model loss never reads the task head)."""
    grads = {name: g + lam * grads_l1[name] if name in grads_l1 else g.copy()
             for name, g in grads_l2.items()}
    return l2 + lam * l1, grads


def check_l3(answer):
    model, batch = small_task(seed=3)
    lam = 0.25  # not the default 0.5: a hard-coded lambda shows
    l3, g3, _ = model.finetune_loss_and_grads(batch, lam)
    l2, g2, _ = model.finetune_loss_and_grads(batch, 0.0)
    B, S, T = batch.ids.shape
    ids, mask = batch.ids.reshape(B * S, T), batch.mask.reshape(B * S, T).astype(np.float64)
    mask[:, 1:] /= mask[:, 1:].sum(axis=1, keepdims=True)  # each sequence's mean
    l1, g1 = model.gpt.lm_loss_and_grads(ids, mask)
    got = answer(l2, g2, l1, g1, lam)
    assert got is not None and len(got) == 2, "return a pair: (l3, grads)"
    loss, grads = got
    assert np.isclose(loss, l3, rtol=1e-12), f"L3 should be {l3:.6f}, got {loss}"
    assert set(grads) == set(g3), (
        f"the gradient dict must have every parameter: missing {sorted(set(g3) - set(grads))}")
    for name, expected in g3.items():
        assert np.allclose(grads[name], expected, rtol=1e-9, atol=1e-13), (
            f"gradient of {name} differs from the library's L3 gradient: it is grad L2 + "
            "lambda * grad L1 where L1 reads the parameter, grad L2 alone where it does not")


EXERCISES = {
    "auxiliary_lm_weights": Exercise(lm_weights, check_lm_weights),
    "auxiliary_l3": Exercise(combine_l3, check_l3),
}
