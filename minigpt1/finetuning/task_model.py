"""The fine-tuning model: GPT's body, a linear head on the extract token, and L2 / L3.

For a batch of B examples of S sequences each (transformations.py makes them):

    h = body(ids)                              (B*S, T, C)   the pre-trained transformer
    z = h[extract]                             (B, S, C)     final state of each extract token
    z = z_1 + z_2             (similarity)     (B, 1, C)     both orderings, added
    z = dropout(z)                                           one mask per example (clf_pdrop)
    logits = z W + b                           (B, S', n)    clf.weight (C, n), clf.bias (n,)

    classification, entailment, similarity:    (B, n)   L2 = cross-entropy over n classes
    regression (STS-B):                        (B,)     L2 = squared error (n = 1)
    multiple choice:                           (B, K)   L2 = cross-entropy over K answers (n = 1)

    L3 = L2 + lambda * L1,   L1 = the LM loss on the same task inputs (paper, equation 5)

L1 here follows the original code: next-token cross-entropy over each sequence's real tokens
(from the first text token through the extract token, padding excluded), averaged within
each sequence and then over all B*S sequences, wrong answers included. It reuses the body's
forward pass: causal attention means h[:, :-1] is what a separate LM pass would compute.
"""

from typing import NamedTuple

from .. import backend
from ..fast.batch_threads import concatenated_row_shards
from ..layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    linear_backward,
    linear_forward,
    squared_error_backward,
    squared_error_forward,
)
from ..model.gpt import GPT
from .transformations import SPECIAL_TOKENS, TaskBatch

HEAD = ("clf.weight", "clf.bias")


def head_outputs(spec):
    """Outputs of the linear head: one score per class, or one per candidate / value."""
    if spec.kind == "multiple_choice" or spec.regression:
        return 1
    return len(spec.labels)


class TaskCache(NamedTuple):
    body: object  # the body's cache
    rows: object  # (B*S,) 0..B*S-1
    extract: object  # (B*S,) extract positions
    shape: tuple  # (B, S, T, C)
    dropout: object
    linear: object
    loss: object  # cross-entropy or squared-error cache
    lm: object  # the LM head's cache, or None when lambda = 0


class TaskModel:
    """A GPT plus a task head. `params` holds the body's arrays (the very same objects as
    `gpt.params`, so an optimizer stepping one steps the other) and clf.weight, clf.bias."""

    def __init__(self, gpt, spec, seed=0, clf_pdrop=0.1, head=None):
        self.gpt, self.spec, self.clf_pdrop = gpt, spec, clf_pdrop
        C, n = gpt.cfg.n_embd, head_outputs(spec)
        if head is None:  # GPT-1: weights N(0, 0.02), bias 0
            weight = backend.host_rng(seed).normal(0.0, gpt.cfg.initializer_range, (C, n))
            head = {"clf.weight": weight, "clf.bias": backend.module_for("cpu").zeros(n)}
        for name, shape in (("clf.weight", (C, n)), ("clf.bias", (n,))):
            if tuple(head[name].shape) != shape:
                raise ValueError(f"{name} has shape {tuple(head[name].shape)}, this task needs "
                                 f"{shape}: was the checkpoint fine-tuned on another task?")
        self.params = dict(gpt.params)
        for name in HEAD:
            self.params[name] = backend.to_device(head[name], gpt.device, gpt.dtype)

    @property
    def head(self):
        return {name: self.params[name] for name in HEAD}

    # ---- forward ---------------------------------------------------------------------------

    def _prepare(self, batch):
        """The batch on the model's device, after checking its labels fit the task."""
        ids, mask, extract, labels = batch
        if ids.ndim != 3:
            raise ValueError(f"task ids must have shape (B, S, T), got {tuple(ids.shape)}")
        if not self.spec.regression and len(labels):
            limit = ids.shape[1] if self.spec.kind == "multiple_choice" else len(self.spec.labels)
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= limit:
                raise ValueError(f"label {low if low < 0 else high} is outside 0..{limit - 1} "
                                 f"for task {self.spec.name}")
        device, dtype = self.gpt.device, self.gpt.dtype
        label_dtype = dtype if self.spec.regression else None
        return TaskBatch(backend.to_device(ids, device), backend.to_device(mask, device, dtype),
                         backend.to_device(extract, device),
                         backend.to_device(labels, device, label_dtype))

    def _forward(self, batch, lm_coef, train, rng):
        """Returns (L2, L1 or None, scores, cache) of a batch already _prepare'd."""
        ids, mask, extract, labels = batch
        B, S, T = ids.shape
        flat = self.gpt._prepare_ids(ids.reshape(B * S, T))
        rng = rng if rng is not None else self.gpt.rng
        h, body = self.gpt.body_forward(flat, train, rng)  # (B*S, T, C)
        C = h.shape[-1]
        xp = backend.xp_of(h)
        rows, positions = xp.arange(B * S), extract.reshape(-1)
        z = h[rows, positions].reshape(B, S, C)  # the extract tokens' final states
        if self.spec.kind == "similarity":
            z = z.sum(axis=1, keepdims=True)  # (B, 1, C): the two orderings added
        # one mask per example: the K candidates of a question lose the same channels
        z, dropout = dropout_forward(z, self.clf_pdrop if train else 0.0, rng, (B, 1, C))
        logits, linear = linear_forward(z, self.params["clf.weight"], self.params["clf.bias"])
        scores = logits.reshape(B) if self.spec.regression else logits.reshape(B, -1)
        l2, loss = self._task_loss(scores, labels)
        l1 = lm = None
        if lm_coef:
            targets = mask[:, :, 1:].reshape(B * S, T - 1)  # real tokens after the first
            weights = targets / targets.sum(axis=1, keepdims=True)  # each sequence's mean
            l1, lm = self.gpt.lm_head_forward(h[:, :-1], flat[:, 1:], weights)
        return l2, l1, scores, TaskCache(body, rows, positions, (B, S, T, C), dropout, linear,
                                         loss, lm)

    def _task_loss(self, scores, labels):
        """L2 and its cache: the squared error of (B,) values, or the cross-entropy of (B, n)
        class logits or (B, K) answer scores."""
        if self.spec.regression:
            return squared_error_forward(scores, labels)
        return cross_entropy_forward(scores, labels)

    def scores(self, batch):
        """The head's outputs (dropout off): (B, n) class logits, (B, K) answer scores or
        (B,) regression values, as a NumPy array."""
        return self.evaluate(batch)[1]

    def evaluate(self, batch):
        """(L2, scores) without dropout or gradients, from one forward pass.

        On the CPU the examples run in shares fixed by the batch, at most one per core
        (fast/batch_threads.py), as GPT.lm_loss's rows do, and L2 is taken once over all their
        scores: the numbers are the same on any number of cores or ranks.
        """
        batch = self._prepare(batch)
        B, S, T = batch.ids.shape

        def scores_of(rows):  # (b, n), (b, K) or (b,)
            return self._forward(TaskBatch(*(part[rows] for part in batch)), 0.0, False, None)[2]

        scores = concatenated_row_shards(scores_of, B, S * T * self.gpt.cfg.n_embd,
                                         self.gpt.device)  # (B, ...)
        l2, _ = self._task_loss(scores, batch.labels)
        return float(l2), backend.to_numpy(scores)

    def finetune_loss(self, batch, lm_coef=0.5):
        """(L3, L2, L1) without gradients; L1 is None when lm_coef is 0."""
        l2, l1, _, _ = self._forward(self._prepare(batch), lm_coef, False, None)
        l1 = None if l1 is None else float(l1)
        return float(l2) + lm_coef * (l1 or 0.0), float(l2), l1

    # ---- backward --------------------------------------------------------------------------

    def finetune_loss_and_grads(self, batch, lm_coef=0.5, train=False, rng=None, scale=1.0):
        """L3 = L2 + lm_coef * L1 on a TaskBatch and its gradients (L2 alone if lm_coef=0).

        Returns (loss, grads, parts) with parts = {"l2": ..., "l1": ... or None}. `scale`
        multiplies the loss and every gradient (not the parts): the batch's share of a larger
        batch.
        """
        l2, l1, _, cache = self._forward(self._prepare(batch), lm_coef, train, rng)
        B, S, T, C = cache.shape
        if self.spec.regression:
            dscores = squared_error_backward(scale, cache.loss)  # (B,), seeded with scale
        else:
            dscores = cross_entropy_backward(scale, cache.loss)  # (B, n) or (B, K)
        # forward: scores = logits reshaped
        dlogits = dscores.reshape(cache.linear.x.shape[:2] + (-1,))  # (B, S', n)
        dz, dweight, dbias = linear_backward(dlogits, cache.linear)
        dz = dropout_backward(dz, cache.dropout)  # (B, S', C)
        # forward: z = z_1 + z_2 (similarity): each ordering receives the whole gradient
        dz = backend.xp_of(dz).broadcast_to(dz, (B, S, C)).reshape(B * S, C)
        xp = backend.xp_of(dz)
        dh = xp.zeros((B * S, T, C), dtype=dz.dtype)
        # forward: z = h[rows, extract]: one position per sequence, so no two rows collide
        dh[cache.rows, cache.extract] = dz
        dwte = None
        if cache.lm is not None:
            dh_lm, dwte = self.gpt.lm_head_backward(scale * lm_coef, cache.lm)  # lambda's share
            dh[:, :-1] += dh_lm
        grads = self.gpt.body_backward(dh, cache.body, dwte)  # adds into dwte when there is one
        grads["clf.weight"], grads["clf.bias"] = dweight, dbias
        l1 = None if l1 is None else float(l1)
        return scale * (float(l2) + lm_coef * (l1 or 0.0)), grads, {"l2": float(l2), "l1": l1}


# ---- from a pre-trained GPT to a task model -------------------------------------------------


def with_special_tokens(gpt, tokenizer, seed=0):
    """Append SPECIAL_TOKENS to the tokenizer (in place) and matching rows to a copy of gpt.

    The new rows are fresh N(0, 0.02) draws, as in the original code: the pre-trained model
    never saw these tokens, and fine-tuning teaches it what they mean. Returns the new GPT
    (gpt itself when its embedding already has a row for every token).
    """
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    cfg = gpt.cfg
    extra = tokenizer.vocab_size - cfg.vocab_size
    if extra <= 0:
        return gpt
    xp = backend.xp_of(gpt.params["tokens_embed.weight"])
    rows = backend.host_rng(seed).normal(0.0, cfg.initializer_range, (extra, cfg.n_embd))
    params = dict(gpt.params)
    params["tokens_embed.weight"] = xp.concatenate(
        [params["tokens_embed.weight"], backend.to_device(rows, gpt.device, gpt.dtype)])
    cfg = type(cfg).from_dict({**cfg.to_dict(), "vocab_size": tokenizer.vocab_size})
    return GPT(cfg, seed=gpt.seed, device=gpt.device, dtype=gpt.dtype, params=params)


def transfer_layers(pretrained, n_layers, seed=0):
    """A GPT that keeps the embeddings and the first n_layers blocks of `pretrained` and
    starts every other block afresh (paper, Figure 2 left); n_layers = -1 keeps nothing,
    which is the "no pre-training" row of Table 5."""
    n_total = pretrained.cfg.n_layer
    if not -1 <= n_layers <= n_total:
        raise ValueError(f"transfer_layers must lie in -1..{n_total} (-1: nothing, 0: the "
                         f"embeddings only, {n_total}: everything), got {n_layers}")
    if n_layers == n_total:
        return pretrained
    fresh = GPT(pretrained.cfg, seed=seed, device=pretrained.device, dtype=pretrained.dtype)
    if n_layers >= 0:
        kept = ["tokens_embed.weight", "positions_embed.weight"]
        kept += [name for name in fresh.params
                 if name.startswith("h.") and int(name.split(".")[1]) < n_layers]
        for name in kept:
            fresh.params[name] = pretrained.params[name].copy()
    return fresh
