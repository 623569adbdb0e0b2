"""Exercises of lesson 06_auxiliary_objective: L1 on the task's own inputs, its gradient
through the tied head, L3 from its parts, and Table 5's "average" column.

    auxiliary_lm_weights          how much each next-token target counts in L1
    auxiliary_task_lm_loss        L1 from the body's final states and the tied embedding
    auxiliary_lm_head_grads       dL1/dh and the head's share of dL1/dWe
    auxiliary_l3                  L3 = L2 + lambda L1 and its gradients, from those of L2 and L1
    auxiliary_average_column      Table 5's average: each seed's mean over the tasks, then
                                  the mean and 95% interval over the seeds

The model checks build a small float64 task model with a fixed seed (small_task) and compare
the answer with TaskModel, which computes L3 in one pass, or check it by finite differences
(minigpt1.gradcheck); the last one compares with the ablation's own summaries. When an answer
is wrong, a check tries the usual mistakes (padding counted, the targets one position off,
tokens averaged instead of sequences ...) and names the one that fits.
"""

import numpy as np

from minigpt1.config import GPTConfig
from minigpt1.finetuning.statistics import summarize, t_quantile
from minigpt1.finetuning.task_model import TaskModel
from minigpt1.finetuning.transformations import EncodedExample, TaskSpec, make_batch, transform
from minigpt1.gradcheck import check_layer, rel_error
from minigpt1.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    position_weights,
    target_log_probs,
)
from minigpt1.model.gpt import GPT

from .base import SWITCHED_OFF, Exercise, Mistake, as_array, as_pair

V = 40  # ordinary tokens; the specials are V, V + 1, V + 2
TOL = 1e-7  # a right gradient lands near 1e-10 against finite differences in float64
SHORT_FIRST = "a short sequence must count as much as a long one"
PADDING = "padding is not text"
SHIFTED = "position t predicts token t+1"


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


def flat(batch):
    """The batch's ids and mask as (N, T) arrays, N = B * S sequences; the mask in float64."""
    B, S, T = batch.ids.shape
    return batch.ids.reshape(B * S, T), batch.mask.reshape(B * S, T).astype(np.float64)


# ---- 1. the weights of L1 ------------------------------------------------------------------


def lm_weights(mask):
    """mask (N, T), 1 on real tokens -> weights (N, T-1) of the N*(T-1) next-token targets,
    such that L1 = sum(w * -log p).

    Target t is token t+1, so it counts when mask[:, t+1] is 1; each sequence's weights sum
    to 1/N: its own mean, then the mean of the N sequences' means."""
    targets = mask[:, 1:]  # (N, T-1): real tokens after the first
    per_sequence = targets / targets.sum(axis=1, keepdims=True)  # each row sums to 1
    return per_sequence / len(mask)  # the mean over the N sequences


def check_lm_weights(answer):
    model, batch = small_task()
    ids, mask = flat(batch)
    N, T = ids.shape
    got = as_array(answer(mask.copy()), (N, T - 1), "lm_weights(mask)")
    if not np.array_equal(got != 0, mask[:, 1:] != 0):
        assert not np.array_equal(got != 0, mask[:, :-1] != 0), (
            f"your weights sit one position early: {SHIFTED}, so target t counts when token "
            "t+1 is real (the first token is never a target; the extract token always is)")
        raise AssertionError(f"{PADDING}: every real target needs a weight above 0, and every "
                             "position whose next token is padding a weight of exactly 0")
    h, _ = model.gpt.body_forward(ids)  # (N, T, C)
    # lm_head_forward divides by the sum of the weights: only their proportions matter here
    l1, _ = model.gpt.lm_head_forward(h[:, :-1], ids[:, 1:], got)
    expected = model.finetune_loss(batch, lm_coef=0.5)[2]
    assert np.isclose(float(l1), expected, rtol=1e-10), (
        f"L1 with your weights is {float(l1):.6f}, the library's {expected:.6f}: "
        f"{SHORT_FIRST} (average within each sequence first, then over the sequences)")
    assert np.isclose(got.sum(), 1.0, rtol=1e-10), (
        f"the proportions are right, but the weights sum to {got.sum():.4g}, not 1: L1 = "
        f"sum(w * -log p) is the mean over the {N} sequences of their means (the 1/N)")


def _weights_from_the_library(mask):
    return position_weights(mask[:, 1:], mask[:, 1:], mask.dtype).reshape(len(mask), -1)


def _weights_with_padding(mask):
    N, T = mask.shape
    return np.full((N, T - 1), 1.0 / (N * (T - 1)))  # every position, padding too


def _weights_of_the_current_token(mask):
    targets = mask[:, :-1]  # the token at t, not the one it predicts
    return targets / targets.sum(axis=1, keepdims=True) / len(mask)


def _weights_per_token(mask):
    return mask[:, 1:] / mask[:, 1:].sum()  # one mean over all real targets: long rows weigh more


def _weights_without_one_over_n(mask):
    return mask[:, 1:] / mask[:, 1:].sum(axis=1, keepdims=True)


# ---- 2. L1 from the final hidden states -----------------------------------------------------


def log_softmax(logits):
    """(..., V) -> log-probabilities (..., V), stable: the row max is taken out before exp."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def task_lm_loss(h, ids, mask, wte):
    """L1 on the task's sequences: h (N, T, C) the body's final states, ids (N, T), mask (N, T)
    1 on real tokens, wte (V, C) the token embedding, which is also the output matrix."""
    logp = log_softmax(h[:, :-1] @ wte.T)  # (N, T-1, V): position t predicts token t+1
    targets = ids[:, 1:, None]  # (N, T-1, 1)
    nll = -np.take_along_axis(logp, targets, axis=-1)[..., 0]  # (N, T-1)
    return float((lm_weights(mask) * nll).sum())  # each sequence's mean, then over N


def _mistaken_l1s(h, ids, mask, wte):
    """The L1 that each usual mistake computes, with the hint that names it."""

    def nll(states, targets):  # (N, t, C), (N, t) -> -log p of each target, (N, t)
        logp = log_softmax(states @ wte.T)
        return -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]

    def per_sequence(values, weights):  # each row's weighted mean, then the mean of the rows
        return float(((values * weights).sum(axis=1) / weights.sum(axis=1)).mean())

    shifted = f"{SHIFTED}: a state never scores the token it was computed from"
    right = nll(h[:, :-1], ids[:, 1:])  # (N, T-1)
    return [
        (float(right.mean()), f"{PADDING}: only targets whose mask is 1 count"),
        (float((right * mask[:, 1:]).sum() / mask[:, 1:].sum()),
         f"{SHORT_FIRST}: average within each sequence first, then over the sequences"),
        (per_sequence(nll(h, ids), mask), shifted),
        (per_sequence(nll(h[:, 1:], ids[:, 1:]), mask[:, 1:]), shifted),
    ]


def check_task_lm_loss(answer):
    model, batch = small_task(seed=1)
    ids, mask = flat(batch)
    h, _ = model.gpt.body_forward(ids)  # (N, T, C)
    wte = model.params["tokens_embed.weight"]  # (V, C)
    expected = model.finetune_loss(batch, lm_coef=0.5)[2]
    got = answer(h.copy(), ids.copy(), mask.copy(), wte.copy())
    assert got is not None, "task_lm_loss returned None: return L1, a number"
    got = float(np.asarray(got).reshape(()))
    if np.isclose(got, expected, rtol=1e-9):
        return
    for wrong, hint in _mistaken_l1s(h, ids, mask, wte):
        assert not np.isclose(got, wrong, rtol=1e-9), f"L1 is {expected:.6f}, not {got:.6f}: {hint}"
    raise AssertionError(
        f"L1 is {expected:.6f}, yours {got:.6f}: the logits are h @ wte.T; take the "
        "log-softmax over the vocabulary and the log-probability of each next token")


def _task_lm_loss_from_the_library(h, ids, mask, wte):
    loss, _ = cross_entropy_forward(h[:, :-1] @ wte.T, ids[:, 1:], lm_weights(mask))
    return loss


def _task_lm_loss_with_padding(h, ids, mask, wte):
    logp = log_softmax(h[:, :-1] @ wte.T)
    return -np.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()  # padding targets too


def _task_lm_loss_of_the_current_token(h, ids, mask, wte):
    logp = log_softmax(h @ wte.T)  # (N, T, V), scored against the token at the same position
    nll = -np.take_along_axis(logp, ids[..., None], axis=-1)[..., 0]
    return float(((nll * mask).sum(axis=1) / mask.sum(axis=1)).mean())


def _task_lm_loss_per_token(h, ids, mask, wte):
    logp = log_softmax(h[:, :-1] @ wte.T)
    nll = -np.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
    return (nll * mask[:, 1:]).sum() / mask[:, 1:].sum()  # one mean over every real token


# ---- 3. L1's gradient through the tied head -------------------------------------------------


def lm_head_grads(h, targets, weights, wte):
    """dL1/dh and the head's share of dL1/dwte, for L1 = sum(w * -log softmax(h wte^T)[y]).

    h (N, T, C), targets (N, T) ids, weights (N, T) summing to 1, wte (V, C)
    -> dh (N, T, C), dwte (V, C)."""
    logits = h @ wte.T  # (N, T, V)
    probs = np.exp(log_softmax(logits))  # (N, T, V)
    onehot = np.zeros_like(probs)
    np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
    dlogits = weights[..., None] * (probs - onehot)  # (N, T, V): each position's share w
    # forward: logits = h @ wte^T
    dh = dlogits @ wte  # (N, T, C)
    dwte = dlogits.reshape(-1, wte.shape[0]).T @ h.reshape(-1, h.shape[-1])  # (V, C), all rows
    return dh, dwte


def check_lm_head_grads(answer):
    model, batch = small_task(seed=2)
    ids, mask = flat(batch)
    states, _ = model.gpt.body_forward(ids)  # (N, T, C)
    h, targets, weights = states[:, :-1].copy(), ids[:, 1:], lm_weights(mask)  # (N, T-1, ...)
    wte = model.params["tokens_embed.weight"].copy()  # (V, C)
    got = as_pair(answer(h.copy(), targets.copy(), weights.copy(), wte.copy()), "(dh, dwte)")
    dh = as_array(got[0], h.shape, "dh")
    dwte = as_array(got[1], wte.shape, "dwte (the shape of wte, (V, C))")

    def forward(h, wte):  # the library's L1 through the tied head
        return cross_entropy_forward(h @ wte.T, targets, weights)

    def backward(dloss, cache):
        return dloss * dh, dloss * dwte

    errors = check_layer(forward, backward, {"h": h, "wte": wte})
    if max(errors.values()) < TOL:
        return
    _, cache = forward(h, wte)
    dlogits = cross_entropy_backward(1.0, cache)  # (N, T-1, V)
    unweighted = cross_entropy_backward(1.0, cross_entropy_forward(h @ wte.T, targets)[1])
    assert rel_error(dh, unweighted @ wte) >= TOL, (
        f"{PADDING}: every position got the same share 1/(N(T-1)); each position's "
        "gradient is weighted by its own w, and padding's w is 0")
    assert rel_error(dh, -(dlogits @ wte)) >= TOL, (
        "the sign is flipped: the gradient of -log p with respect to the logits is the "
        "softmax minus the one-hot target")
    hint = ("dh is right; the tied head reads wte in every position, so its gradient sums "
            "over all of them" if errors["h"] < TOL else
            "start from dL1/dlogits (lesson 02's softmax minus one-hot, weighted), then "
            "logits = h @ wte.T is a linear map")
    raise AssertionError(f"relative errors against finite differences: dh {errors['h']:.1e}, "
                         f"dwte {errors['wte']:.1e} (want < {TOL:.0e}). {hint}")


def _lm_head_grads_from_the_library(h, targets, weights, wte):
    _, cache = cross_entropy_forward(h @ wte.T, targets, weights)
    dlogits = cross_entropy_backward(1.0, cache)  # (N, T, V)
    return dlogits @ wte, dlogits.reshape(-1, wte.shape[0]).T @ h.reshape(-1, h.shape[-1])


def _lm_head_grads_with_padding(h, targets, weights, wte):
    return lm_head_grads(h, targets, np.full(weights.shape, 1.0 / weights.size), wte)


def _lm_head_grads_with_the_sign_flipped(h, targets, weights, wte):
    dh, dwte = lm_head_grads(h, targets, weights, wte)
    return -dh, -dwte


# ---- 4. L3 from L2 and L1 ------------------------------------------------------------------


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
    ids, mask = flat(batch)
    mask[:, 1:] /= mask[:, 1:].sum(axis=1, keepdims=True)  # each sequence's mean
    l1, g1 = model.gpt.lm_loss_and_grads(ids, mask)  # L1 by the pre-training path
    given = ({k: v.copy() for k, v in g2.items()}, {k: v.copy() for k, v in g1.items()})
    try:
        got = as_pair(answer(l2, given[0], l1, given[1], lam), "(l3, grads)")
    except KeyError as missing:
        raise AssertionError(
            f"KeyError {missing}: grads_l1 has no entry for the task head (L1 never reads "
            "it), so its L3 gradient is grad L2's alone") from None
    loss, grads = got
    assert all(np.array_equal(given[0][k], g2[k]) for k in g2) and all(
        np.array_equal(given[1][k], g1[k]) for k in g1), (
        "you changed grads_l2 or grads_l1 in place (+= on their arrays): the caller's "
        "gradients are not yours to change; build new arrays for L3")
    assert not np.isclose(loss, lam * l2 + l1), (
        "lambda weighs the auxiliary term L1; the task loss L2 keeps weight 1")
    assert np.isclose(loss, l3, rtol=1e-12), f"L3 should be {l3:.6f}, got {loss}"
    assert set(grads) == set(g3), (
        f"the gradient dict must have every parameter: missing {sorted(set(g3) - set(grads))}")
    for name, expected in g3.items():
        if np.allclose(grads[name], expected, rtol=1e-9, atol=1e-13):
            continue
        assert not (name in g1 and np.allclose(grads[name], lam * (g2[name] + g1[name]))), (
            f"{name}: lambda multiplied both gradients; only grad L1 is weighted, before it "
            "is added to grad L2")
        raise AssertionError(
            f"gradient of {name} differs from the library's L3 gradient: the gradient of a "
            "weighted sum is the same weighted sum of the gradients, for every parameter "
            "L1 reads, and grad L2 alone for the others")


def _l3_from_the_library(l2, grads_l2, l1, grads_l1, lam):
    model, batch = small_task(seed=3)
    return model.finetune_loss_and_grads(batch, lam)[:2]


def _l3_with_lambda_on_l2(l2, grads_l2, l1, grads_l1, lam):
    grads = {n: lam * g + grads_l1.get(n, 0.0) for n, g in grads_l2.items()}
    return lam * l2 + l1, grads


def _l3_weighted_after_adding(l2, grads_l2, l1, grads_l1, lam):
    grads = {n: lam * (g + grads_l1.get(n, 0.0)) for n, g in grads_l2.items()}
    return l2 + lam * l1, grads


def _l3_in_place(l2, grads_l2, l1, grads_l1, lam):
    for name, g in grads_l1.items():
        grads_l2[name] += lam * g  # changes the caller's arrays
    return l2 + lam * l1, grads_l2


def _l3_forgetting_the_head(l2, grads_l2, l1, grads_l1, lam):
    return l2 + lam * l1, {n: g + lam * grads_l1[n] for n, g in grads_l2.items()}


# ---- 5. Table 5's average column -------------------------------------------------------------


def average_column(per_seed):
    """One variant's "average" cell, in points: per_seed {task: {seed: accuracy}} ->
    (mean, half width of the 95% interval) over the seeds of each seed's mean over the tasks."""
    tasks = list(per_seed)
    seeds = list(per_seed[tasks[0]])
    averages = np.array([np.mean([per_seed[t][s] for t in tasks]) for s in seeds])  # (n,)
    n = len(averages)
    sd = averages.std(ddof=1)  # the sample standard deviation: n - 1, as the mean is estimated
    half_width = t_quantile(0.975, n - 1) * sd / np.sqrt(n)  # Student's t, n - 1 dof
    return 100 * averages.mean(), 100 * half_width


def _scores(n_tasks, n_seeds, seed):
    """{task: {seed: accuracy}} as ablation.json holds them (seeds as strings)."""
    rng = np.random.default_rng(seed)
    return {f"task-{t}": {str(s): float(rng.uniform(0.3, 0.9)) for s in range(n_seeds)}
            for t in range(n_tasks)}


def check_average_column(answer):
    # imported here: the jobs pull in matplotlib, which the other lessons' checks do without
    from minigpt1.jobs.ablation import summaries

    for per_seed in (_scores(4, 3, seed=0), _scores(2, 5, seed=1)):
        right = summaries({"variant": per_seed})["variant"]["average"]
        n, mean, half = right.n, 100 * right.mean, 100 * right.half_width
        got = answer({t: dict(s) for t, s in per_seed.items()})
        assert got is not None, "average_column returned None: return (mean, half_width)"
        mean_got, half_got = (float(x) for x in as_pair(tuple(got), "(mean, half_width)"))
        where = f"with {len(per_seed)} tasks and {n} seeds"
        assert not np.isclose(mean_got, right.mean), (
            f"{where}: give the scores in points, as the table does (accuracy times 100)")
        assert np.isclose(mean_got, mean, rtol=1e-9), (
            f"{where}: the mean is {mean:.3f}, yours {mean_got:.3f}: the mean of every score")
        if np.isclose(half_got, half, rtol=1e-6):
            continue
        tasks_own = np.mean([summarize(list(s.values())).half_width for s in per_seed.values()])
        assert not np.isclose(half_got, 100 * tasks_own, rtol=1e-6), (
            f"{where}: that is the mean of the tasks' own intervals; the average column's "
            "interval is the spread of the seeds' averages (average each seed first)")
        assert not np.isclose(half_got, half * np.sqrt((n - 1) / n), rtol=1e-6), (
            f"{where}: use the sample standard deviation, which divides by n - 1 (ddof=1)")
        assert not np.isclose(half_got / half, 1.96 / t_quantile(0.975, n - 1), rtol=1e-6), (
            f"{where}: with so few seeds the interval uses Student's t with n - 1 degrees of "
            "freedom (t_quantile(0.975, n - 1)), not the normal's 1.96")
        raise AssertionError(f"{where}: the half width is {half:.3f}, yours {half_got:.3f}: "
                             "t(0.975, n - 1) * sd / sqrt(n) of the seeds' averages")


def _average_from_the_library(per_seed):
    seeds = list(next(iter(per_seed.values())))
    found = summarize([np.mean([s[k] for s in per_seed.values()]) for k in seeds])
    return 100 * found.mean, 100 * found.half_width


def _average_of_the_tasks_intervals(per_seed):
    found = [average_column({task: scores}) for task, scores in per_seed.items()]
    return tuple(np.mean(found, axis=0))  # the tasks' means and half widths, averaged


def _average_with_ddof_0(per_seed):
    averages = np.mean([list(s.values()) for s in per_seed.values()], axis=0)  # (n seeds,)
    n = len(averages)
    return 100 * averages.mean(), 100 * t_quantile(0.975, n - 1) * averages.std() / np.sqrt(n)


def _average_with_1_96(per_seed):
    averages = np.mean([list(s.values()) for s in per_seed.values()], axis=0)
    return 100 * averages.mean(), 100 * 1.96 * averages.std(ddof=1) / np.sqrt(len(averages))


EXERCISES = {
    "auxiliary_lm_weights": Exercise(
        solution=lm_weights, check=check_lm_weights, library=(position_weights,),
        mistakes=(Mistake(_weights_from_the_library, SWITCHED_OFF),
                  Mistake(_weights_with_padding, PADDING),
                  Mistake(_weights_of_the_current_token, SHIFTED),
                  Mistake(_weights_per_token, SHORT_FIRST),
                  Mistake(_weights_without_one_over_n, "the 1/N"))),
    "auxiliary_task_lm_loss": Exercise(
        solution=task_lm_loss, check=check_task_lm_loss,
        library=(cross_entropy_forward, target_log_probs, GPT.lm_head_forward, GPT.lm_loss,
                 TaskModel.finetune_loss),
        mistakes=(Mistake(_task_lm_loss_from_the_library, SWITCHED_OFF),
                  Mistake(_task_lm_loss_with_padding, PADDING),
                  Mistake(_task_lm_loss_of_the_current_token, SHIFTED),
                  Mistake(_task_lm_loss_per_token, SHORT_FIRST))),
    "auxiliary_lm_head_grads": Exercise(
        solution=lm_head_grads, check=check_lm_head_grads,
        library=(cross_entropy_backward, GPT.lm_head_backward),
        mistakes=(Mistake(_lm_head_grads_from_the_library, SWITCHED_OFF),
                  Mistake(_lm_head_grads_with_padding, PADDING),
                  Mistake(_lm_head_grads_with_the_sign_flipped, "the sign is flipped"))),
    "auxiliary_l3": Exercise(
        solution=combine_l3, check=check_l3, library=(TaskModel.finetune_loss_and_grads,),
        mistakes=(Mistake(_l3_from_the_library, SWITCHED_OFF),
                  Mistake(_l3_with_lambda_on_l2, "L2 keeps weight 1"),
                  Mistake(_l3_weighted_after_adding, "lambda multiplied both gradients"),
                  Mistake(_l3_in_place, "in place"),
                  Mistake(_l3_forgetting_the_head, "no entry for the task head"))),
    "auxiliary_average_column": Exercise(
        solution=average_column, check=check_average_column,
        library=(summarize,),  # the ablation's summaries call it: off with it
        mistakes=(Mistake(_average_from_the_library, SWITCHED_OFF),
                  Mistake(_average_of_the_tasks_intervals, "average each seed first"),
                  Mistake(_average_with_ddof_0, "ddof=1"),
                  Mistake(_average_with_1_96, "not the normal's 1.96"))),
}
