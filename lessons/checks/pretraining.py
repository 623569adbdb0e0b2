"""Lesson 04 (generative pre-training): GPT-1's backward pass and its training, by hand.

The exercises build what pre-training runs, on the real model: the parameter count, the
gradients of the embedding and of the tied head, the post-LN block's backward, the whole
model's L1 gradient assembled from the layers, the learning-rate schedule, the AdamW update
and top-k sampling. A check computes the expected values with the library, outside the
student's call (inside it, the library's own answer is switched off), and the gradients also
by central differences in float64 on tiny shapes. When an answer is wrong, the check looks
for the first tensor that went wrong, in the order the backward pass computes them, and says
what that usually means. The solutions below are the reference answers: try the exercises
before reading them.
"""

import math

import numpy as np

from minigpt1 import GPT, parameter_count, parameter_shapes
from minigpt1.config import GPTConfig
from minigpt1.fast.adamw import adamw_update_in_slices
from minigpt1.fast.embedding import scatter_add_flat
from minigpt1.gradcheck import check_layer, check_sampled, rel_error
from minigpt1.layers import (
    attention_backward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    embedding_backward,
    embedding_forward,
    gelu_backward,
    layernorm_backward,
    linear_backward,
)
from minigpt1.layers.dropout import DropoutCache
from minigpt1.layers.embedding import EmbeddingCache, scatter_add
from minigpt1.layers.linear import LinearCache
from minigpt1.model.block import BLOCK_PARAM_SHAPES, block_backward, block_forward
from minigpt1.model.generate import top_k_filter
from minigpt1.training.optim import AdamW, adamw_update, warmup_cosine

from .base import SWITCHED_OFF, Exercise, Mistake, as_array, as_pair

TOL = 1e-7  # a right answer lands near 1e-9 (finite differences) or 1e-15 (the library)


def _perturbed(params, rng):
    """Move every tensor away from its tidy initial values (0 biases, unit gains), in place,
    so that no bug hides behind a 0 or a 1."""
    for p in params.values():
        p += rng.normal(0.0, 0.3 if p.ndim == 1 else 0.1, size=p.shape)
    return params


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
        expected = parameter_count(GPTConfig(vocab_size=V, n_ctx=n_ctx, n_embd=C, n_layer=L,
                                             n_head=4))
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
                     "tensors of a block one by one (the table lists them)")
        raise AssertionError(hint)


def _param_count_from_the_library(vocab_size, n_ctx, n_embd, n_layer):
    return parameter_count(GPTConfig(vocab_size=vocab_size, n_ctx=n_ctx, n_embd=n_embd,
                                     n_layer=n_layer, n_head=1))


def _param_count_with_an_untied_head(vocab_size, n_ctx, n_embd, n_layer):
    return param_count_solution(vocab_size, n_ctx, n_embd, n_layer) + vocab_size * n_embd


def _param_count_without_biases(vocab_size, n_ctx, n_embd, n_layer):
    return (vocab_size + n_ctx) * n_embd + n_layer * 12 * n_embd**2  # matrices only


# ---- 2. the embedding's gradient: a scatter-add and a sum over the batch ------------------


def embedding_grads_solution(dh0, ids, vocab_size, n_ctx):
    """dL/dWe and dL/dWp of h0 = We[ids] + Wp[:T], from dh0 (B, T, C)."""
    B, T, C = dh0.shape
    dwte = np.zeros((vocab_size, C), dtype=dh0.dtype)
    np.add.at(dwte, ids, dh0)  # row ids[b, t] += dh0[b, t]: a repeated token adds up
    dwpe = np.zeros((n_ctx, C), dtype=dh0.dtype)  # rows T.. were not used: zero
    dwpe[:T] = dh0.sum(axis=0)  # row t of Wp was added to every sequence of the batch
    return dwte, dwpe


EMBEDDING_IDS = np.array([[3, 7, 3, 1, 3, 0], [7, 2, 5, 5, 9, 3]])  # (B, T): 3, 7, 5 repeat


def check_embedding_grads(answer):
    rng = np.random.default_rng(5)
    V, n_ctx, C = 11, 9, 4
    ids = EMBEDDING_IDS
    wte, wpe = rng.standard_normal((V, C)), rng.standard_normal((n_ctx, C))

    def student(dh0):
        got = as_pair(answer(dh0.copy(), ids.copy(), V, n_ctx), "(dwte, dwpe)")
        return as_array(got[0], (V, C), "dwte"), as_array(got[1], (n_ctx, C), "dwpe")

    dh0 = rng.standard_normal((*ids.shape, C))  # (B, T, C)
    dwte, dwpe = student(dh0)
    right_dwte, right_dwpe = embedding_backward(dh0, EmbeddingCache(ids, V, n_ctx, 0))
    counts = np.bincount(ids.reshape(-1), minlength=V)  # (V,) occurrences of each token
    off = np.abs(dwte - right_dwte).max(axis=1) > TOL * np.abs(right_dwte).max()  # (V,) rows
    assert not off[counts == 0].any(), (
        "rows of tokens that are not in the batch have no gradient from the lookup: zero")
    assert not off.any() or off[counts == 1].any(), (
        "right for tokens seen once, wrong for tokens seen several times: each occurrence "
        "adds its dh0 row, and fancy-index assignment (dwte[ids] += dh0) keeps only one of "
        "them. Use np.add.at")
    assert not off.any(), "row v of dwte is the sum of dh0[b, t] over the positions where ids == v"
    T = ids.shape[1]
    assert rel_error(dwpe[T:], right_dwpe[T:]) == 0, "rows T.. of Wp were not used: zero"
    assert rel_error(dwpe, right_dwpe) < TOL, (
        "row t of Wp is added to every sequence of the batch: its gradient is dh0 summed "
        "over the batch axis (axis 0), neither one sequence's nor their mean")
    errors = check_layer(lambda w, p: embedding_forward(ids, w, p),
                         lambda dy, cache: student(dy), {"wte": wte, "wpe": wpe}, seed=5)
    assert max(errors.values()) < TOL, f"finite differences disagree: {errors}"


def _embedding_grads_by_assignment(dh0, ids, vocab_size, n_ctx):
    dwte, dwpe = embedding_grads_solution(dh0, ids, vocab_size, n_ctx)
    dwte[...] = 0.0
    dwte[ids] += dh0  # a buffered write: a repeated token keeps one position's row
    return dwte, dwpe


def _embedding_grads_positions_averaged(dh0, ids, vocab_size, n_ctx):
    dwte, dwpe = embedding_grads_solution(dh0, ids, vocab_size, n_ctx)
    dwpe[: ids.shape[1]] = dh0.mean(axis=0)  # a mean over the batch, not a sum
    return dwte, dwpe


def _embedding_grads_from_the_library(dh0, ids, vocab_size, n_ctx):
    return embedding_backward(dh0, EmbeddingCache(ids, vocab_size, n_ctx, 0))


# ---- 3. the tied head's gradient: logits = h We^T -----------------------------------------


def tied_head_grads_solution(dlogits, h, wte):
    """logits = h We^T: dlogits (B, T, V) -> dh (B, T, C) and the head's share of dWe (V, C)."""
    V, C = wte.shape
    dh = dlogits @ wte  # (B, T, V) @ (V, C)
    dwte = dlogits.reshape(-1, V).T @ h.reshape(-1, C)  # (V, B*T) @ (B*T, C): every position
    return dh, dwte


def check_tied_head_grads(answer):
    rng = np.random.default_rng(6)
    B, T, V, C = 2, 5, 13, 6
    model = GPT(GPTConfig(vocab_size=V, n_ctx=T, n_embd=C, n_layer=1, n_head=1), seed=6,
                dtype="float64")
    wte = model.params["tokens_embed.weight"]
    wte += rng.standard_normal((V, C))  # (V, C), away from the small initial values
    h = rng.standard_normal((B, T, C))
    _, head = model.lm_head_forward(h, rng.integers(0, V, size=(B, T)))
    right_dh, right_dwte = model.lm_head_backward(1.0, head)  # the real model's head
    dlogits = cross_entropy_backward(1.0, head.ce)  # (B, T, V)

    def student(dy, h, wte):
        dh, dwte = as_pair(answer(dy.copy(), h.copy(), wte.copy()), "(dh, dwte)")
        assert np.shape(dwte) != (C, V), (
            f"dwte has shape (C, V) = {(C, V)}: transposed. We is (V, C), and so is its "
            "gradient: dlogits^T h, a (V, B*T) @ (B*T, C) product")
        return as_array(dh, (B, T, C), "dh"), as_array(dwte, (V, C), "dwte")

    dh, dwte = student(dlogits, h, wte)
    assert rel_error(dh, right_dh) < TOL, (
        "dh is off: logits = h We^T, so dh = dlogits We, a (B, T, V) @ (V, C) product")
    assert rel_error(dwte, right_dwte) < TOL, (
        "dwte is off: every position's logits use We, so its gradient sums dlogits^T h over "
        "all B*T positions (flatten B and T together), neither one sequence's nor a mean")
    errors = check_layer(lambda h, w: (h @ w.T, None), lambda dy, _: student(dy, h, wte),
                         {"h": h.copy(), "wte": wte.copy()}, seed=6)
    assert max(errors.values()) < TOL, f"finite differences disagree: {errors}"


def _tied_head_transposed(dlogits, h, wte):
    dh, dwte = tied_head_grads_solution(dlogits, h, wte)
    return dh, dwte.T


def _tied_head_first_sequence_only(dlogits, h, wte):
    return dlogits @ wte, dlogits[0].T @ h[0]  # forgets the batch


def _tied_head_through_linear_backward(dlogits, h, wte):
    dh, dweight, _ = linear_backward(dlogits, LinearCache(h, wte.T))  # the head as a linear
    return dh, dweight.T


# ---- 4. the post-LN block's backward -------------------------------------------------------


def block_backward_solution(dh, cache):
    """Backward of n = LN_1(x + a(x)), h = LN_2(n + m(n)): (B, T, C) -> dx and the grads."""
    grads = {}
    # h = LN_2(n + m): the LayerNorm comes after the sum, so its backward comes first
    dsum2, grads["ln_2.weight"], grads["ln_2.bias"] = layernorm_backward(dh, cache.ln_2)
    dn = dsum2 + _mlp_branch_backward(dsum2, cache, grads)  # the skip path + the MLP's path
    # n = LN_1(x + a)
    dsum1, grads["ln_1.weight"], grads["ln_1.bias"] = layernorm_backward(dn, cache.ln_1)
    dx = dsum1 + _attention_branch_backward(dsum1, cache, grads)
    return dx, grads


def _mlp_branch_backward(dm, cache, grads):
    """m = dropout(c_proj(gelu(c_fc(n)))): dm -> dn along the branch; fills the MLP's grads."""
    dm = dropout_backward(dm, cache.mlp_dropout)
    dg, grads["mlp.c_proj.weight"], grads["mlp.c_proj.bias"] = linear_backward(dm, cache.mlp_proj)
    df = gelu_backward(dg, cache.gelu)  # (B, T, 4C)
    dn, grads["mlp.c_fc.weight"], grads["mlp.c_fc.bias"] = linear_backward(df, cache.c_fc)
    return dn


def _attention_branch_backward(da, cache, grads):
    """a = dropout(c_proj(attention(c_attn(x)))): da -> dx along the branch; fills grads."""
    da = dropout_backward(da, cache.attn_dropout)
    dy, grads["attn.c_proj.weight"], grads["attn.c_proj.bias"] = linear_backward(
        da, cache.attn_proj)
    dqkv = attention_backward(dy, cache.attn)  # (B, T, 3C)
    dx, grads["attn.c_attn.weight"], grads["attn.c_attn.bias"] = linear_backward(
        dqkv, cache.c_attn)
    return dx


BACKWARD_ORDER = ("ln_2", "mlp.c_proj", "mlp.c_fc", "ln_1", "attn.c_proj", "attn.c_attn")
BLOCK_HINTS = {
    "ln_2": "h = LN_2(n + m) is post-LN: the LayerNorm comes after the sum, so its backward "
            "comes first and gets all of dh; its dx is the gradient of the sum n + m",
    "mlp.c_proj": "the MLP branch m = dropout(c_proj(gelu(c_fc(n)))) gets the gradient of the "
                  "sum n + m: run its layers backward in reverse order",
    "mlp.c_fc": "between c_proj and c_fc sits the GELU: gelu_backward with its cache",
    "ln_1": "forgotten residual: n reaches h twice, through the MLP and through the skip "
            "connection, so dn is the sum of both gradients before LN_1's backward",
    "attn.c_proj": "the attention branch a = dropout(c_proj(attention(c_attn(x)))) gets the "
                   "gradient of the sum x + a: run its layers backward in reverse order",
    "attn.c_attn": "attention_backward turns the gradient of its output into dqkv (B, T, 3C), "
                   "the gradient of c_attn's output",
}
DROPOUT_HINT = ("the residual branches end in dropout (GPT-1 drops 10%): undo it with "
                "dropout_backward before the branch's projection")


def _tiny_block(seed):
    """A block of width 8 (2 heads), its input (2, 5, 8) and a forward with dropout on whose
    masks are the same at every call (a fresh generator with a fixed seed each time)."""
    rng = np.random.default_rng(seed)
    params = {name: (1.0 if name.startswith("ln") and name.endswith("weight") else 0.0)
              + np.zeros(shape(8)) for name, shape in BLOCK_PARAM_SHAPES.items()}
    params = _perturbed(params, rng)
    x = rng.standard_normal((2, 5, 8))

    def forward(x, p):
        return block_forward(x, p, n_head=2, attn_pdrop=0.1, resid_pdrop=0.1,
                             rng=np.random.default_rng(seed + 1))

    return x, params, forward


def _first_wrong_block_tensor(grads, right, cache, dh):
    for layer in BACKWARD_ORDER:
        names = [f"{layer}.weight", f"{layer}.bias"]
        if all(rel_error(grads[n], right[n]) < TOL for n in names):
            continue
        branch = {"mlp.c_proj": "mlp_dropout", "attn.c_proj": "attn_dropout"}.get(layer)
        if branch:  # the same block without that branch's dropout
            undropped = block_backward(dh, cache._replace(**{branch: DropoutCache(None)}))[1]
            if all(rel_error(grads[n], undropped[n]) < TOL for n in names):
                return DROPOUT_HINT
        return f"{layer}'s gradients are off: {BLOCK_HINTS[layer]}"
    return None


def check_block_backward(answer):
    x, params, forward = _tiny_block(7)
    _, cache = forward(x, params)
    dh = np.random.default_rng(8).standard_normal(x.shape)  # (B, T, C) the upstream gradient
    right_dx, right = block_backward(dh, cache)
    got = as_pair(answer(dh.copy(), forward(x, params)[1]), "(dx, grads)")  # a cache of its own
    assert isinstance(got[1], dict) and set(got[1]) == set(BLOCK_PARAM_SHAPES), (
        f"grads must be a dict under the block's names {sorted(BLOCK_PARAM_SHAPES)}")
    dx = as_array(got[0], x.shape, "dx")
    grads = {n: as_array(g, params[n].shape, f"grads[{n!r}]") for n, g in got[1].items()}
    hint = _first_wrong_block_tensor(grads, right, cache, dh)
    assert hint is None, hint
    assert rel_error(dx, right_dx) < TOL, (
        "dx is off, every parameter is right. Forgotten residual: x reaches n twice, through "
        "attention and through the skip connection, so dx is the sum of both gradients")
    inputs = {"x": x, **params}

    def loss():  # sum(h * dh), whose gradient is what the backward computes
        return np.sum(forward(inputs["x"], params)[0] * dh)

    errors = check_sampled(loss, inputs, {"x": dx, **grads}, samples=4)
    assert max(errors.values()) < TOL, f"finite differences disagree: {errors}"


def _block_from_the_library(dh, cache):
    return block_backward(dh, cache)


def _block_without_the_mlp_residual(dh, cache):
    grads = {}
    dsum2, grads["ln_2.weight"], grads["ln_2.bias"] = layernorm_backward(dh, cache.ln_2)
    dn = _mlp_branch_backward(dsum2, cache, grads)  # the skip connection's dsum2 is lost
    dsum1, grads["ln_1.weight"], grads["ln_1.bias"] = layernorm_backward(dn, cache.ln_1)
    return dsum1 + _attention_branch_backward(dsum1, cache, grads), grads


def _block_as_pre_ln(dh, cache):
    grads = {}  # as if h = n + m(LN_2(n)): the skip path would bypass the LayerNorm
    dln2 = _mlp_branch_backward(dh, cache, grads)
    dsum2, grads["ln_2.weight"], grads["ln_2.bias"] = layernorm_backward(dln2, cache.ln_2)
    dn = dh + dsum2
    dln1 = _attention_branch_backward(dn, cache, grads)
    dsum1, grads["ln_1.weight"], grads["ln_1.bias"] = layernorm_backward(dln1, cache.ln_1)
    return dn + dsum1, grads


def _block_without_dropout(dh, cache):
    off = DropoutCache(None)
    return block_backward_solution(dh, cache._replace(mlp_dropout=off, attn_dropout=off))


# ---- 5. the whole model's backward: L1's gradient ----------------------------------------


def model_grads_solution(model, ids):
    """L1 on windows ids (B, T+1) and its gradient for every parameter (dropout off)."""
    loss, inputs, body, dh, dwte_head = _forward_and_head(model, ids)
    dh0, grads = _blocks_backward(dh, body.blocks)  # (B, T, C), the blocks' gradients
    dwte_lookup, grads["positions_embed.weight"] = embedding_grads_solution(
        dh0, inputs, model.cfg.vocab_size, model.cfg.n_ctx)
    grads["tokens_embed.weight"] = dwte_head + dwte_lookup  # We is used twice: the uses add
    return loss, grads


def _forward_and_head(model, ids):
    """The forward pass and the head's backward: L1, the inputs, the body's caches, the
    gradient of the last block's output and the head's share of dWe."""
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T) each: predict the next token
    h, body = model.body_forward(inputs)  # (B, T, C), the caches of the embedding and blocks
    wte = model.params["tokens_embed.weight"]  # (V, C)
    loss, ce = cross_entropy_forward(h @ wte.T, targets)  # logits (B, T, V)
    dh, dwte_head = tied_head_grads_solution(cross_entropy_backward(1.0, ce), h, wte)
    return float(loss), inputs, body, dh, dwte_head


def _blocks_backward(dh, caches, order=reversed):
    """Every block backward, the last one first: -> dh0 (B, T, C) and {h.i.name: grad}."""
    grads = {}
    for i in order(range(len(caches))):
        dh, block = block_backward_solution(dh, caches[i])
        grads.update({f"h.{i}.{name}": g for name, g in block.items()})
    return dh, grads


MODEL_IDS = np.array([[4, 11, 4, 7, 2, 11, 9], [15, 4, 0, 7, 7, 3, 18]])  # (B, T+1)


def _tiny_model():
    """GPT-1 in miniature (V = 19, 2 blocks of width 8), in float64, away from its init."""
    cfg = GPTConfig(vocab_size=19, n_ctx=8, n_embd=8, n_layer=2, n_head=2)
    model = GPT(cfg, seed=9, dtype="float64")
    _perturbed(model.params, np.random.default_rng(9))
    return model


def _wrong_model_tensors(grads, right, model):
    """The hint for the first wrong tensor, in the order the backward pass computes them."""
    L = model.cfg.n_layer
    wrong = {n for n in right if rel_error(grads[n], right[n]) >= TOL}
    top = {n for n in wrong if n.startswith(f"h.{L - 1}.")}
    if top:
        return (f"the last block's gradients are off ({sorted(top)[0]}, ...): it is the first "
                "block to run backward, from dh = dlogits We, with the logits h We^T and "
                "dlogits = cross_entropy_backward(1.0, ...)")
    if any(n.startswith("h.") for n in wrong):
        return ("the lower blocks' gradients are off: run the blocks backward from the last "
                "to the first, each with its own cache, its dx becoming the next block's dh")
    if "positions_embed.weight" in wrong:
        return ("positions_embed.weight is off: the embedding gets the dh that leaves the first "
                "block, and row t of Wp sums it over the batch")
    if "tokens_embed.weight" not in wrong:
        return None
    h, _ = model.body_forward(MODEL_IDS[:, :-1])  # (B, T, C)
    _, head = model.lm_head_forward(h, MODEL_IDS[:, 1:])
    head_share = model.lm_head_backward(1.0, head)[1]  # (V, C)
    got = grads["tokens_embed.weight"]
    if rel_error(got, head_share) < TOL:
        return ("tokens_embed.weight has only the head's share. We is tied: the lookup h0 = "
                "U We + Wp uses it too, so add the embedding's scatter-add of dh0")
    if rel_error(got, right["tokens_embed.weight"] - head_share) < TOL:
        return ("tokens_embed.weight has only the embedding's share. We is tied: the head's "
                "logits h We^T use it too, so add dlogits^T h")
    return "tokens_embed.weight is off: it is the head's share plus the embedding's"


def check_model_grads(answer):
    model = _tiny_model()
    right_loss, right = model.lm_loss_and_grads(MODEL_IDS)
    loss, grads = as_pair(answer(_tiny_model(), MODEL_IDS.copy()), "(loss, grads)")
    assert isinstance(grads, dict) and set(grads) == set(model.params), (
        "grads must be a dict with every name of model.params (HuggingFace's names), got "
        f"{sorted(grads) if isinstance(grads, dict) else type(grads)}")
    grads = {n: as_array(g, model.params[n].shape, f"grads[{n!r}]") for n, g in grads.items()}
    assert loss is not None and math.isclose(loss, right_loss, rel_tol=1e-9), (
        f"loss {loss}, expected {right_loss:.6f}: the mean cross-entropy of the targets "
        "ids[:, 1:] given the inputs ids[:, :-1]")
    hint = _wrong_model_tensors(grads, right, model)
    assert hint is None, hint
    errors = check_sampled(lambda: model.lm_loss(MODEL_IDS), model.params, grads, samples=4)
    assert max(errors.values()) < TOL, f"finite differences disagree: {errors}"


def _model_grads_from_the_library(model, ids):
    return model.lm_loss_and_grads(ids)


def _model_grads_with(order=reversed, shares=("head", "lookup")):
    """A whole-model answer that runs the blocks in `order` and gives dWe only `shares`."""

    def answer(model, ids):
        loss, inputs, body, dh, dwte_head = _forward_and_head(model, ids)
        dh0, grads = _blocks_backward(dh, body.blocks, order)
        dwte_lookup, grads["positions_embed.weight"] = embedding_grads_solution(
            dh0, inputs, model.cfg.vocab_size, model.cfg.n_ctx)
        kept = {"head": dwte_head, "lookup": dwte_lookup}
        grads["tokens_embed.weight"] = sum(kept[share] for share in shares)
        return loss, grads

    return answer


# ---- 6. the warm-up + cosine learning rate -----------------------------------------------


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
                where = ("the warm-up ends exactly at max_lr, where the cosine starts: the "
                         "progress (step - warmup_steps) / (total_steps - warmup_steps) is 0 "
                         "there")
            elif step >= total:
                where = "after total_steps the lr stays at min_lr"
            else:
                where = ("after the warm-up the cosine goes from max_lr to min_lr as the "
                         "progress (step - warmup_steps) / (total_steps - warmup_steps) "
                         "goes from 0 to 1")
            raise AssertionError(f"{named}, step {step}: got {got}, expected {expected}; {where}")


def _lr_at_from_the_library(step, max_lr, warmup_steps, total_steps, min_lr):
    return warmup_cosine(step, max_lr, warmup_steps, total_steps, min_lr)


def _lr_at_warmup_one_ahead(step, max_lr, warmup_steps, total_steps, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps  # the first update already gets some lr
    return lr_at_solution(step, max_lr, warmup_steps, total_steps, min_lr)


def _lr_at_cosine_over_every_step(step, max_lr, warmup_steps, total_steps, min_lr):
    if step < warmup_steps or step >= total_steps:
        return lr_at_solution(step, max_lr, warmup_steps, total_steps, min_lr)
    progress = step / total_steps  # counts the warm-up as part of the descent
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


# ---- 7. the AdamW update -------------------------------------------------------------------


def adamw_step_solution(params, grads, m, v, t, lr, betas, eps, weight_decay):
    """One AdamW update (step t = 1, 2, ...) of every array in `params`, in place, with its
    moments m and v (dicts of arrays under the same names, updated in place too)."""
    b1, b2 = betas
    for name, p in params.items():
        g = grads[name]
        m[name][...] = b1 * m[name] + (1.0 - b1) * g  # running mean of the gradients
        v[name][...] = b2 * v[name] + (1.0 - b2) * g * g  # and of their squares
        m_hat = m[name] / (1.0 - b1**t)  # both start at 0: correct the bias towards 0
        v_hat = v[name] / (1.0 - b2**t)
        if p.ndim >= 2:  # GPT-1 decays matrices only, never a bias or a LayerNorm gain
            p -= lr * weight_decay * p  # decoupled: shrink p itself, outside the moments
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)


ADAMW_SHAPES = {"h.0.mlp.c_fc.weight": (4, 6), "h.0.mlp.c_fc.bias": (6,),
                "h.0.ln_1.weight": (4,)}  # a matrix, a bias and a LayerNorm gain
ADAMW_SETTINGS = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}


def _adamw_hint(name, what, weight_decay, p):
    if what in ("m", "v") and weight_decay == 0:
        return ("the moments are off: m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g^2, "
                "updated in place")
    if what in ("m", "v"):
        return ("the moments change with the weight decay: decoupled weight decay never "
                "enters m and v (that would be L2 regularisation, which Adam rescales); it "
                "shrinks p on its own, p -= lr weight_decay p")
    if weight_decay == 0:
        return ("the Adam step is off: bias-correct the moments, m_hat = m / (1 - b1^t) and "
                "v_hat = v / (1 - b2^t) with t counted from 1, then p -= lr m_hat / "
                "(sqrt(v_hat) + eps)")
    if p.ndim < 2:
        return (f"{name} is a vector, and GPT-1 decays matrices only (ndim >= 2): never a "
                "bias or a LayerNorm gain")
    return (f"{name} is a matrix: it decays, p -= lr weight_decay p, applied to p as it was "
            "before this update's Adam step")


def _adamw_run(answer, weight_decay):
    rng = np.random.default_rng(10)
    params = {n: rng.standard_normal(shape) for n, shape in ADAMW_SHAPES.items()}
    held = dict(params)  # the arrays a model would hold
    right = {n: p.copy() for n, p in params.items()}
    optimizer = AdamW(right, weight_decay=weight_decay, **ADAMW_SETTINGS)
    m = {n: np.zeros_like(p) for n, p in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    for t in range(1, 6):
        grads = {n: rng.standard_normal(p.shape) * 10.0 ** rng.integers(-3, 1)
                 for n, p in params.items()}  # gradients of very different sizes
        before = {n: p.copy() for n, p in params.items()}
        optimizer.step(grads)
        answer(params, {n: g.copy() for n, g in grads.items()}, m, v, t,
               weight_decay=weight_decay, **ADAMW_SETTINGS)
        for name in params:
            assert params[name] is held[name], (
                f"step {t}: params[{name!r}] is a new array, and the model's own did not "
                "change: update each array in place (p -= ...)")
        assert any(not np.array_equal(params[n], before[n]) for n in params), (
            f"step {t}: the parameters did not change: update each array in place (p -= ...), "
            "the model holds these very arrays")
        for name in params:
            for what, got, expected in (("m", m, optimizer.m), ("v", v, optimizer.v),
                                        ("p", params, right)):
                if rel_error(got[name], expected[name]) >= TOL:
                    raise AssertionError(f"step {t}, {name}, {what}: "
                                         + _adamw_hint(name, what, weight_decay, params[name]))


def check_adamw_step(answer):
    _adamw_run(answer, weight_decay=0.0)  # the Adam part alone first
    _adamw_run(answer, weight_decay=0.1)


def _adamw_step_from_the_library(params, grads, m, v, t, lr, betas, eps, weight_decay):
    for name, p in params.items():
        decay = weight_decay if p.ndim >= 2 else 0.0
        adamw_update(p, grads[name], m[name], v[name], t, lr, betas, eps, decay)


def _adamw_step_without_bias_correction(params, grads, m, v, t, lr, betas, eps, weight_decay):
    b1, b2 = betas
    adamw_step_solution(params, grads, m, v, t, lr, betas, eps, weight_decay)
    for name, p in params.items():  # undo the corrected step, take the uncorrected one
        p += lr * (m[name] / (1 - b1**t)) / (np.sqrt(v[name] / (1 - b2**t)) + eps)
        p -= lr * m[name] / (np.sqrt(v[name]) + eps)


def _adamw_step_as_l2(params, grads, m, v, t, lr, betas, eps, weight_decay):
    l2 = {n: g + weight_decay * params[n] * (params[n].ndim >= 2) for n, g in grads.items()}
    adamw_step_solution(params, l2, m, v, t, lr, betas, eps, 0.0)  # the decay in the moments


def _adamw_step_rebinding(params, grads, m, v, t, lr, betas, eps, weight_decay):
    for name, p in params.items():
        params[name] = p.copy()  # a new array in the dict: the model's array stays as it was
    adamw_step_solution(params, grads, m, v, t, lr, betas, eps, weight_decay)


def _adamw_step_decaying_everything(params, grads, m, v, t, lr, betas, eps, weight_decay):
    for p in params.values():
        if p.ndim < 2:
            p -= lr * weight_decay * p  # vectors too
    adamw_step_solution(params, grads, m, v, t, lr, betas, eps, weight_decay)


# ---- 8. top-k filtering --------------------------------------------------------------------


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
        expected = top_k_filter(before, k)
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


def _top_k_from_the_library(logits, k):
    return top_k_filter(logits, k)


def _top_k_with_zeros(logits, k):
    return np.where(np.isfinite(top_k_solution(logits, k)), logits, 0.0)


def _top_k_in_place(logits, k):
    logits[~np.isfinite(top_k_solution(logits, k))] = -np.inf  # overwrites the caller's array
    return logits


EXERCISES = {
    "pretraining_param_count": Exercise(
        solution=param_count_solution, check=check_param_count,
        library=(parameter_count, parameter_shapes),
        mistakes=(Mistake(_param_count_from_the_library, SWITCHED_OFF),
                  Mistake(_param_count_with_an_untied_head, "it adds no parameter"),
                  Mistake(_param_count_without_biases, "Count the biases"))),
    "pretraining_embedding_grads": Exercise(
        solution=embedding_grads_solution, check=check_embedding_grads,
        library=(embedding_backward, scatter_add, scatter_add.plain, scatter_add_flat),
        mistakes=(Mistake(_embedding_grads_from_the_library, SWITCHED_OFF),
                  Mistake(_embedding_grads_by_assignment, "Use np.add.at"),
                  Mistake(_embedding_grads_positions_averaged, "summed over the batch axis"))),
    "pretraining_tied_head_grads": Exercise(
        solution=tied_head_grads_solution, check=check_tied_head_grads,
        library=(GPT.lm_head_backward, linear_backward),
        mistakes=(Mistake(_tied_head_through_linear_backward, SWITCHED_OFF),
                  Mistake(_tied_head_transposed, "transposed"),
                  Mistake(_tied_head_first_sequence_only, "all B*T positions"))),
    "pretraining_block_backward": Exercise(
        solution=block_backward_solution, check=check_block_backward,
        library=(block_backward,),
        mistakes=(Mistake(_block_from_the_library, SWITCHED_OFF),
                  Mistake(_block_without_the_mlp_residual, "n reaches h twice"),
                  Mistake(_block_as_pre_ln, "the LayerNorm comes after the sum"),
                  Mistake(_block_without_dropout, "undo it with dropout_backward"))),
    "pretraining_model_grads": Exercise(
        solution=model_grads_solution, check=check_model_grads,
        library=(GPT.lm_loss_and_grads, GPT.body_backward, GPT.lm_head_backward),
        mistakes=(Mistake(_model_grads_from_the_library, SWITCHED_OFF),
                  Mistake(_model_grads_with(shares=("head",)), "has only the head's share"),
                  Mistake(_model_grads_with(shares=("lookup",)),
                          "has only the embedding's share"),
                  Mistake(_model_grads_with(order=list), "the last block's gradients"))),
    "pretraining_lr_at": Exercise(
        solution=lr_at_solution, check=check_lr_at, library=(warmup_cosine,),
        mistakes=(Mistake(_lr_at_from_the_library, SWITCHED_OFF),
                  Mistake(_lr_at_warmup_one_ahead, "step 0) has lr 0"),
                  Mistake(_lr_at_cosine_over_every_step, "the progress (step - warmup_steps)"))),
    "pretraining_adamw_step": Exercise(
        solution=adamw_step_solution, check=check_adamw_step,
        library=(adamw_update, adamw_update.plain, adamw_update_in_slices, AdamW.step),
        mistakes=(Mistake(_adamw_step_from_the_library, SWITCHED_OFF),
                  Mistake(_adamw_step_without_bias_correction, "bias-correct the moments"),
                  Mistake(_adamw_step_as_l2, "never enters m and v"),
                  Mistake(_adamw_step_decaying_everything, "GPT-1 decays matrices only"),
                  Mistake(_adamw_step_rebinding, "update each array in place"))),
    "pretraining_top_k": Exercise(
        solution=top_k_solution, check=check_top_k, library=(top_k_filter,),
        mistakes=(Mistake(_top_k_from_the_library, SWITCHED_OFF),
                  Mistake(_top_k_with_zeros, "not 0"),
                  Mistake(_top_k_in_place, "changed its input"))),
}
