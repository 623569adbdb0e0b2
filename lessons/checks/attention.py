"""Exercises of lesson 03 (masked multi-head self-attention), with their checks.

The forward pass, built step by step:
    attention_one_head          softmax(q k^T / sqrt(hs)) v for one head, no mask yet
    attention_split_heads       (B, T, C) -> (B, nh, T, hs)
    attention_merge_heads       (B, nh, T, hs) -> (B, T, C), the inverse
    attention_causal_mask       the (T, T) mask that lets query i see keys 0..i only
    attention_masked_softmax    softmax over the keys a query may see: the future gets exactly 0
    attention_sublayer          c_proj(attention(c_attn(x))) with a block's parameters
    attention_param_count       the parameters of one attention sublayer of GPT-1 (a number)
and backward:
    attention_softmax_backward  dscores from probs and dprobs (B, nh, T, T): the row term
    attention_row_term          the same row term from dy_h and y_h (B, nh, T, hs) alone
    attention_backward_by_hand  d(qkv) through the values, the softmax and the scale

Each check compares the answer with the library, or with finite differences from
`minigpt1.gradcheck`, on inputs it builds from a fixed seed. When the answer returns what one
of the typical mistakes listed beside the exercise returns, the check raises that mistake's
hint, which names what is off in the lesson's terms.
"""

import numpy as np

from minigpt1 import GPT, parameter_shapes
from minigpt1.config import GPTConfig
from minigpt1.fast.attention import (
    attend,
    attend_backward,
    attention_backward_by_blocks,
    attention_forward_by_blocks,
    causal_softmax_in_place,
)
from minigpt1.gradcheck import check_layer, numerical_gradient, rel_error
from minigpt1.layers import attention_backward, attention_forward, linear_forward
from minigpt1.layers.attention import (
    AttentionCache,
    causal_mask,
    causal_softmax,
    merge_heads,
    split_heads,
)
from minigpt1.layers.dropout import DropoutCache

from .base import SWITCHED_OFF, Exercise, Mistake, as_array

TOL = 1e-8  # the same numbers up to rounding (about 1e-15 here)
GRAD_TOL = 1e-7  # against central differences, which are good to about 1e-10


def _catalogue(mistakes, *inputs):
    """[(what each typical mistake returns for these inputs, its hint)]."""
    copies = [x.copy() if isinstance(x, np.ndarray) else x for x in inputs]
    return [(np.asarray(m.answer(*copies), dtype=np.float64), m.hint) for m in mistakes]


def _verdict(got, expected, typical, advice, tol=TOL):
    """Pass when got is expected; else raise the hint of the typical mistake that gives got,
    or, when it is none of them, the error and some advice."""
    err = rel_error(got, expected)
    if err < tol:
        return
    for wrong, hint in typical:
        if wrong.shape == got.shape and rel_error(got, wrong) < TOL:
            raise AssertionError(hint)
    raise AssertionError(f"relative error {err:.1e} (want < {tol:.0e}): {advice}")


# ---- 1. one head -------------------------------------------------------------------------


def one_head(q, k, v):
    """One head without a mask: queries, keys, values (T, hs) -> outputs (T, hs)."""
    hs = q.shape[-1]
    scores = q @ k.T / np.sqrt(hs)  # (T, T): row i compares query i with every key
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))  # shifted: exp cannot overflow
    weights /= weights.sum(axis=-1, keepdims=True)  # (T, T): each row sums to 1 over the keys
    return weights @ v  # (T, hs): output i is the weighted average of the value rows


def _one_head_without_scale(q, k, v):
    return one_head(q * np.sqrt(q.shape[-1]), k, v)  # the scores come out as q . k


def _one_head_softmax_over_queries(q, k, v):
    scores = q @ k.T / np.sqrt(q.shape[-1])  # (T, T)
    weights = np.exp(scores) / np.exp(scores).sum(axis=0)  # columns sum to 1, not rows
    return weights @ v


ONE_HEAD_MISTAKES = (
    Mistake(_one_head_without_scale, "the scores are sqrt(hs) times too large: divide q k^T by "
            "sqrt(hs) before the softmax"),
    Mistake(_one_head_softmax_over_queries, "take the softmax over the keys: each row of weights "
            "(one query) must sum to 1, so normalise along the last axis, not down the columns"),
)


def check_one_head(answer):
    q, k, v = np.random.default_rng(30).standard_normal((3, 7, 4))  # (T, hs) each
    got = as_array(answer(q.copy(), k.copy(), v.copy()), (7, 4), "one_head(q, k, v)")
    _verdict(got, one_head(q, k, v), _catalogue(ONE_HEAD_MISTAKES, q, k, v),
             "scores q k^T / sqrt(hs) (T, T), a softmax over each row, then the rows of weights "
             "times v")


# ---- 2. heads: split and merge -----------------------------------------------------------


def split_heads_by_hand(x, n_head):
    """(B, T, C) -> (B, nh, T, hs): head h gets channels h*hs .. (h+1)*hs - 1."""
    B, T, C = x.shape
    per_head = x.reshape(B, T, n_head, C // n_head)  # (B, T, nh, hs): C cut into nh groups
    return per_head.transpose(0, 2, 1, 3)  # (B, nh, T, hs): the head axis before the positions


def merge_heads_by_hand(y):
    """(B, nh, T, hs) -> (B, T, C): each position's heads side by side again."""
    B, nh, T, hs = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)  # via (B, T, nh, hs)


def _split_by_reshape_alone(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, n_head, T, C // n_head)  # the right shape, positions and channels mixed


def _split_interleaved(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, C // n_head, n_head).transpose(0, 3, 1, 2)  # every nh-th channel


def _split_with_the_library(x, n_head):
    return split_heads(x, n_head)


def _merge_by_reshape_alone(y):
    B, nh, T, hs = y.shape
    return y.reshape(B, T, nh * hs)  # head 0's rows run into the next positions


def _merge_interleaved(y):
    B, nh, T, hs = y.shape
    return y.transpose(0, 2, 3, 1).reshape(B, T, nh * hs)  # channel c of every head together


def _merge_with_the_library(y):
    return merge_heads(y)


MISPLACED = "the numbers are right, their places are not: "
SPLIT_MISTAKES = (
    Mistake(_split_by_reshape_alone, MISPLACED + "a reshape alone to (B, nh, T, hs) mixes "
            "positions with channels; reshape C into (nh, hs), then transpose the head axis in "
            "front of the positions"),
    Mistake(_split_interleaved, MISPLACED + "head h owns hs consecutive channels, h*hs to "
            "(h+1)*hs - 1, not every nh-th one"),
)
MERGE_MISTAKES = (
    Mistake(_merge_by_reshape_alone, MISPLACED + "heads merged in the wrong order: a reshape "
            "alone runs one head's positions together; transpose to (B, T, nh, hs) first"),
    Mistake(_merge_interleaved, MISPLACED + "put each head's hs channels side by side, as "
            "(B, T, nh, hs), not channel by channel across the heads"),
)


def check_split_heads(answer):
    x = np.random.default_rng(31).standard_normal((2, 5, 12))  # (B, T, C), every number distinct
    for n_head in (3, 4, 1):
        shape = (2, n_head, 5, 12 // n_head)
        got = as_array(answer(x.copy(), n_head), shape, f"splitting (2, 5, 12) into {n_head} heads")
        _verdict(got, split_heads(x, n_head), _catalogue(SPLIT_MISTAKES, x, n_head),
                 "head h at position t holds channels h*hs .. (h+1)*hs - 1 of x[:, t]")


def check_merge_heads(answer):
    y = np.random.default_rng(32).standard_normal((2, 3, 5, 4))  # (B, nh, T, hs)
    got = as_array(answer(y.copy()), (2, 5, 12), "merging y of shape (2, 3, 5, 4)")
    _verdict(got, merge_heads(y), _catalogue(MERGE_MISTAKES, y),
             "merging undoes the split: position t gets head 0's hs channels, then head 1's, ...")


# ---- 3. the causal mask ------------------------------------------------------------------


def build_causal_mask(T):
    """(T, T) bool: True where query i (row) may attend to key j (column), that is j <= i."""
    rows = np.arange(T)[:, None]  # (T, 1) query positions
    cols = np.arange(T)[None, :]  # (1, T) key positions
    return cols <= rows  # broadcasts to (T, T): the lower triangle, diagonal included


def _mask_transposed(T):
    return np.triu(np.ones((T, T), dtype=bool))  # query i sees the keys after it


def _mask_without_diagonal(T):
    return np.tril(np.ones((T, T), dtype=bool), k=-1)


def _mask_from_the_library(T):
    return causal_mask(T, T, np)


def check_causal_mask(build):
    for T in (1, 2, 5, 8):
        mask = np.asarray(build(T))
        expected = causal_mask(T, T, np)  # the library's mask
        assert mask.shape == (T, T), f"for T={T} the mask has shape ({T}, {T}), not {mask.shape}"
        assert mask.dtype == bool, (f"return booleans (True = may attend), not dtype {mask.dtype}: "
                                    "a comparison or .astype(bool) gives them")
        if np.array_equal(mask, expected):
            continue
        if np.array_equal(mask, expected.T):
            raise AssertionError("that is the transpose: rows are queries, columns are keys, "
                                 "and query i may see keys 0..i (the lower triangle)")
        if np.array_equal(mask, np.tril(np.ones((T, T), dtype=bool), k=-1)):
            raise AssertionError("the diagonal is missing: a token may attend to itself "
                                 "(without it, row 0 would have no key at all)")
        raise AssertionError(f"for T={T} expected\n{expected.astype(int)}\ngot\n{mask.astype(int)}")


# ---- 4. the masked softmax ---------------------------------------------------------------


def masked_softmax(scores):
    """Softmax over the last axis of scores (..., T, T), over the keys j <= i of each query i.

    The future gets -inf before the softmax, so its weight is exp(-inf) = 0 exactly. Each row's
    max is subtracted first (finite: the diagonal is never masked), so no exp exceeds 1."""
    masked = np.where(build_causal_mask(scores.shape[-1]), scores, -np.inf)  # (..., T, T)
    exps = np.exp(masked - masked.max(axis=-1, keepdims=True))  # (..., T, T), all in [0, 1]
    return exps / exps.sum(axis=-1, keepdims=True)  # each row sums to 1


def _plain_softmax(scores):
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)  # over every key, the future included


def _softmax_masked_with_zero(scores):
    return _plain_softmax(np.where(build_causal_mask(scores.shape[-1]), scores, 0.0))


def _softmax_masked_afterwards(scores):
    return np.where(build_causal_mask(scores.shape[-1]), _plain_softmax(scores), 0.0)


def _softmax_mask_transposed(scores):
    return _plain_softmax(np.where(build_causal_mask(scores.shape[-1]).T, scores, -np.inf))


def _softmax_without_the_max(scores):
    exps = np.exp(np.where(build_causal_mask(scores.shape[-1]), scores, -np.inf))
    return exps / exps.sum(axis=-1, keepdims=True)  # exp(1000) overflows to inf


def _softmax_from_the_library(scores):
    return causal_softmax(scores)


SOFTMAX_MISTAKES = (
    Mistake(_softmax_masked_with_zero, "probability leaks to future keys: a masked score of 0 "
            "is an ordinary score (exp(0) = 1); give them -inf, so that exp(-inf) = 0"),
    Mistake(_softmax_masked_afterwards, "the rows no longer sum to 1: apply the mask to the "
            "scores, before the softmax; zeroing weights afterwards leaves their share out"),
    Mistake(_softmax_mask_transposed, "the mask is transposed: query i (row) may see the keys "
            "j <= i (the lower triangle), not those after it"),
)
OVERFLOW = ("scores of size 1000 gave inf or NaN: exp overflows beyond about 709. Subtract each "
            "row's max (over the keys it may see) before exp; it changes no probability")


def check_masked_softmax(answer):
    scores = 3.0 * np.random.default_rng(34).standard_normal((2, 3, 6, 6))  # (B, nh, T, T)
    future = ~causal_mask(6, 6, np)  # (T, T) True above the diagonal
    for size in (1.0, 1000.0):
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            got = as_array(answer(size * scores), scores.shape, "masked_softmax(scores)")
        assert np.all(np.isfinite(got)), OVERFLOW
        _verdict(got, causal_softmax(size * scores), _catalogue(SOFTMAX_MISTAKES, size * scores),
                 "put -inf where the mask says no, then the softmax over the last axis")
        assert np.all(got[..., future] == 0), ("future keys must get probability exactly 0, "
                                               "which -inf gives (exp(-inf) = 0)")


# ---- 5. the whole sublayer ---------------------------------------------------------------


def attention_sublayer(x, p, n_head):
    """x (B, T, C) -> c_proj(attention(c_attn(x))) (B, T, C), with a block's parameters p
    under the model's names (attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight, ...)."""
    C = x.shape[-1]
    qkv = x @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]  # (B, T, 3C): c_attn
    q, k, v = (split_heads_by_hand(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    probs = masked_softmax(q @ k.swapaxes(-1, -2) / np.sqrt(C // n_head))  # (B, nh, T, T)
    y = merge_heads_by_hand(probs @ v)  # (B, nh, T, hs) -> (B, T, C)
    return y @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]  # (B, T, C): c_proj


def _sublayer_without_scale(x, p, n_head):
    C = x.shape[-1]
    grow = np.concatenate([np.full(C, np.sqrt(C // n_head)), np.ones(2 * C)])  # (3C,)
    # queries sqrt(hs) times larger: the scores come out as q . k, never divided
    return attention_sublayer(x, {**p, "attn.c_attn.weight": p["attn.c_attn.weight"] * grow,
                                  "attn.c_attn.bias": p["attn.c_attn.bias"] * grow}, n_head)


def _sublayer_merged_by_reshape(x, p, n_head):
    B, T, C = x.shape
    qkv = x @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]  # (B, T, 3C)
    q, k, v = (split_heads_by_hand(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    y_h = masked_softmax(q @ k.swapaxes(-1, -2) / np.sqrt(C // n_head)) @ v  # (B, nh, T, hs)
    return y_h.reshape(B, T, C) @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]


def _sublayer_without_c_proj(x, p, n_head):
    C = x.shape[-1]
    identity = {"attn.c_proj.weight": np.eye(C), "attn.c_proj.bias": np.zeros(C)}
    return attention_sublayer(x, {**p, **identity}, n_head)


def _sublayer_from_the_library(x, p, n_head):
    qkv, _ = linear_forward(x, p["attn.c_attn.weight"], p["attn.c_attn.bias"])
    y, _ = attention_forward(qkv, n_head)
    return linear_forward(y, p["attn.c_proj.weight"], p["attn.c_proj.bias"])[0]


SUBLAYER_MISTAKES = (
    Mistake(_sublayer_without_scale, "the scores are sqrt(hs) times too large: divide q k^T by "
            "sqrt(hs), with hs = C / n_head"),
    Mistake(_sublayer_merged_by_reshape, "heads merged in the wrong order: a reshape alone of "
            "(B, nh, T, hs) mixes positions; transpose to (B, T, nh, hs) before the reshape"),
    Mistake(_sublayer_without_c_proj, "c_proj is missing: the merged heads (B, T, C) go "
            "through attn.c_proj (weight and bias), which mixes the heads"),
)


def real_layer(seed=35):
    """Block 0 of a small GPT (C = 12, 3 heads) in float64, as a dict under the model's names,
    its attention weights redrawn 15 times larger than GPT-1's initialisation and its biases
    non-zero: at N(0, 0.02) every softmax row would be nearly uniform and most mistakes would
    hardly show. And an input x (2, 7, C)."""
    cfg = GPTConfig(vocab_size=16, n_ctx=8, n_embd=12, n_layer=1, n_head=3)
    p = GPT(cfg, seed=0, dtype="float64").block_params(0)
    rng = np.random.default_rng(seed)
    for name in ("attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                 "attn.c_proj.bias"):
        p[name] = 0.3 * rng.standard_normal(p[name].shape)  # in the model: std 0.02, bias 0
    return rng.standard_normal((2, 7, cfg.n_embd)), p, cfg.n_head


def check_sublayer(answer):
    x, p, n_head = real_layer()
    got = as_array(answer(x.copy(), {name: w.copy() for name, w in p.items()}, n_head), x.shape,
                 "attention_sublayer(x, p, n_head)")
    qkv, _ = linear_forward(x, p["attn.c_attn.weight"], p["attn.c_attn.bias"])  # the library
    y, _ = attention_forward(qkv, n_head)
    expected, _ = linear_forward(y, p["attn.c_proj.weight"], p["attn.c_proj.bias"])
    _verdict(got, expected, _catalogue(SUBLAYER_MISTAKES, x, p, n_head),
             "c_attn, split q, k, v into heads, masked softmax of q k^T / sqrt(hs), weights "
             "times v, merge the heads, c_proj")


# ---- 6. parameter count ------------------------------------------------------------------


def attention_param_count():
    """One attention sublayer of GPT-1 (C = 768): c_attn (C -> 3C) and c_proj (C -> C)."""
    C = 768
    c_attn = C * 3 * C + 3 * C  # weight (C, 3C): q | k | v side by side, and its bias
    c_proj = C * C + C  # weight (C, C) mixes the heads' outputs, and its bias
    return c_attn + c_proj  # 2,362,368: the number of heads does not appear


def check_param_count(answer):
    if answer is None:
        raise AssertionError("replace None with your number (an int)")
    shapes = parameter_shapes(GPTConfig())  # the gpt1 preset: C = 768, 12 heads
    expected = sum(int(np.prod(shape)) for name, shape in shapes.items()
                   if name.startswith("h.0.attn."))
    C, nh = 768, 12
    hints = {
        C * 3 * C + C * C: "you forgot the two biases (3C for c_attn, C for c_proj)",
        C * 3 * C + 3 * C: "you counted c_attn only: c_proj (C -> C, with a bias) follows it",
        expected * nh: "the heads share c_attn and c_proj: each head reads its own hs = C / nh "
                       "columns, so the count does not depend on the number of heads",
        expected // nh: "each head owns C / nh columns of q, k and v, but all heads together "
                        "use the whole c_attn and c_proj",
    }
    default = "count c_attn (C -> 3C) and c_proj (C -> C), weights and biases"
    hint = hints.get(answer, default) if isinstance(answer, (int, np.integer)) else default
    assert answer == expected, f"{answer!r} is not right: {hint}"


# ---- 7. the softmax backward, on whole arrays --------------------------------------------


def softmax_backward_by_hand(probs, dprobs):
    """dL/dscores from probs = softmax(scores) and dL/dprobs, all (B, nh, T, T).

    ds_i = sum_j dp_j p_j (delta_ij - p_i) = p_i (dp_i - sum_j p_j dp_j): the sum is one number
    per query row, the row term."""
    row_term = (dprobs * probs).sum(axis=-1, keepdims=True)  # (B, nh, T, 1): over the keys
    return probs * (dprobs - row_term)  # (B, nh, T, T); masked keys (p = 0) get exactly 0


def _softmax_backward_diagonal_only(probs, dprobs):
    return probs * dprobs  # the delta_ij term alone


def _softmax_backward_without_keepdims(probs, dprobs):
    return probs * (dprobs - (dprobs * probs).sum(axis=-1))  # (B, nh, T) cannot broadcast


def _softmax_backward_over_queries(probs, dprobs):
    return probs * (dprobs - (dprobs * probs).sum(axis=-2, keepdims=True))  # down the columns


def _softmax_backward_without_p(probs, dprobs):
    return dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)


SOFTMAX_BACKWARD_MISTAKES = (
    Mistake(_softmax_backward_diagonal_only, "the row term is missing: p_i dp_i is only the "
            "diagonal of the Jacobian; through the row's shared sum, every s_i also moves every "
            "other p_j"),
    Mistake(_softmax_backward_over_queries, "the row term sums over the keys of one query (the "
            "last axis), not over the queries"),
    Mistake(_softmax_backward_without_p, "ds must be a multiple of p: the masked keys (p = 0) "
            "get exactly 0, as dp_j/ds_i = p_j (delta_ij - p_i) says"),
)
KEEPDIMS = ("keep the summed axis with keepdims=True: the row term is one number per query, "
            "shape (B, nh, T, 1), which broadcasts over the keys")


def _softmax_inputs(seed):
    rng = np.random.default_rng(seed)
    scores = 2.0 * rng.standard_normal((2, 3, 5, 5))  # (B, nh, T, T): weights far from uniform
    dprobs = rng.standard_normal((2, 3, 5, 5))  # a random upstream gradient, never all ones
    return scores, causal_softmax.plain(scores), dprobs


def check_softmax_backward(answer):
    scores, probs, dprobs = _softmax_inputs(36)
    try:
        got = answer(probs.copy(), dprobs.copy())
    except ValueError as error:  # a shape that does not broadcast
        raise AssertionError(f"{error}: {KEEPDIMS}") from error
    got = as_array(got, probs.shape, "softmax_backward_by_hand(probs, dprobs)")
    # the oracle: central differences of f(s) = sum(masked softmax(s) * dprobs), in float64
    numerical = numerical_gradient(lambda: np.sum(causal_softmax.plain(scores) * dprobs),
                                   scores).reshape(scores.shape)
    _verdict(got, numerical, _catalogue(SOFTMAX_BACKWARD_MISTAKES, probs, dprobs),
             "ds_i = p_i (dp_i - row term), the row term summed over the keys with "
             "keepdims=True", tol=GRAD_TOL)


# ---- 8. the row term from the output -----------------------------------------------------


def row_term_from_output(dy_h, y_h):
    """sum_k dprobs_ik probs_ik from dy_h and y_h (B, nh, T, hs) alone.

    dprobs_ik = dy_i . v_k, so the sum is dy_i . (sum_k probs_ik v_k) = dy_i . y_i."""
    return (dy_h * y_h).sum(axis=-1, keepdims=True)  # (B, nh, T, 1): hs products per query


def _row_term_without_keepdims(dy_h, y_h):
    return (dy_h * y_h).sum(axis=-1)  # (B, nh, T)


def _row_term_over_queries(dy_h, y_h):
    return (dy_h * y_h).sum(axis=-2, keepdims=True)  # (B, nh, 1, hs)


def _row_term_of_sums(dy_h, y_h):
    return dy_h.sum(axis=-1, keepdims=True) * y_h.sum(axis=-1, keepdims=True)


def check_row_term(answer):
    rng = np.random.default_rng(37)
    qkv = rng.standard_normal((2, 5, 36))  # (B, T, 3C): C = 12, 3 heads of 4
    dy_h = rng.standard_normal((2, 3, 5, 4))  # (B, nh, T, hs) the upstream gradient, per head
    y, cache = attention_forward.plain(qkv, 3)
    y_h = split_heads(y, 3)  # (B, nh, T, hs)
    dprobs = dy_h @ cache.v.swapaxes(-1, -2)  # (B, nh, T, T) as the backward pass has it
    expected = (dprobs * cache.probs).sum(axis=-1, keepdims=True)  # (B, nh, T, 1)
    got = np.asarray(answer(dy_h.copy(), y_h.copy()))
    assert got.shape != expected.shape[:-1], KEEPDIMS
    assert got.shape != (2, 3, 1, 4), ("sum over the hs channels of each query (the last "
                                       "axis): one number per query, not per channel")
    got = as_array(got, expected.shape, "row_term_from_output(dy_h, y_h)")
    _verdict(got, expected, [], "write dprobs_ik = dy_i . v_k into sum_k dprobs_ik probs_ik, "
             "and move the sum over k inside the dot product: what is sum_k probs_ik v_k?")


# ---- 9. the attention backward -----------------------------------------------------------


def attention_backward_by_hand(dy, q, k, v, probs):
    """d(qkv) (B, T, 3C) from dy = dL/dy (B, T, C) and the forward's q, k, v (B, nh, T, hs)
    and probs (B, nh, T, T); no dropout."""
    hs = q.shape[-1]
    dy_h = split_heads_by_hand(dy, q.shape[1])  # (B, nh, T, hs)
    # forward: y_h = probs @ v
    dprobs = dy_h @ v.swapaxes(-1, -2)  # (B, nh, T, T)
    dv = probs.swapaxes(-1, -2) @ dy_h  # (B, nh, T, hs)
    # forward: probs = masked softmax(scores); masked keys have p = 0, so their dscores are 0
    dscores = softmax_backward_by_hand(probs, dprobs)  # (B, nh, T, T)
    # forward: scores = q @ k^T / sqrt(hs)
    dq = dscores @ k / np.sqrt(hs)  # (B, nh, T, hs)
    dk = dscores.swapaxes(-1, -2) @ q / np.sqrt(hs)  # (B, nh, T, hs)
    return np.concatenate([merge_heads_by_hand(d) for d in (dq, dk, dv)], axis=-1)


def _parts(dqkv):
    """d(qkv) (B, T, 3C) -> dq, dk, dv (B, T, C) each."""
    return np.split(dqkv, 3, axis=-1)


def _backward_dq_dk_swapped(dy, q, k, v, probs):
    dq, dk, dv = _parts(attention_backward_by_hand(dy, q, k, v, probs))
    return np.concatenate([dk, dq, dv], axis=-1)


def _backward_without_scale(dy, q, k, v, probs):
    dq, dk, dv = _parts(attention_backward_by_hand(dy, q, k, v, probs))
    root_hs = np.sqrt(q.shape[-1])
    return np.concatenate([dq * root_hs, dk * root_hs, dv], axis=-1)


def _backward_without_row_term(dy, q, k, v, probs):
    dy_h = split_heads_by_hand(dy, q.shape[1])  # (B, nh, T, hs)
    dscores = probs * (dy_h @ v.swapaxes(-1, -2)) / np.sqrt(q.shape[-1])  # p * dp: no row term
    dq, dk = dscores @ k, dscores.swapaxes(-1, -2) @ q
    dv = probs.swapaxes(-1, -2) @ dy_h
    return np.concatenate([merge_heads_by_hand(d) for d in (dq, dk, dv)], axis=-1)


def _backward_from_the_library(dy, q, k, v, probs):
    return attention_backward(dy, AttentionCache(q, k, v, probs, probs, DropoutCache(None)))


BACKWARD_MISTAKES = (
    Mistake(_backward_dq_dk_swapped, "dq and dk are swapped: d(qkv) is [dq | dk | dv], and in "
            "scores = q k^T the queries index the rows of dscores, the keys its columns"),
    Mistake(_backward_without_scale, "dq and dk are sqrt(hs) times too large: the forward "
            "divided the scores by sqrt(hs), so the backward divides dq and dk by it too"),
    Mistake(_backward_without_row_term, "dq and dk are off but dv is right: dscores lacks the "
            "softmax's row term, ds = p (dp - row term) of the softmax backward exercise"),
)


def check_attention_backward(answer):
    n_head = 3
    qkv = np.random.default_rng(38).standard_normal((2, 5, 36))  # (B, T, 3C): C = 12, hs = 4
    seen = {}

    def backward(dy, cache):  # the answer, called as check_layer calls a backward pass
        seen["inputs"] = (dy, cache.q, cache.k, cache.v, cache.probs)
        seen["library"] = attention_backward.plain(dy, cache)  # (B, T, 3C)
        got = answer(*(a.copy() for a in seen["inputs"]))
        seen["got"] = as_array(got, qkv.shape, "attention_backward_by_hand(dy, q, k, v, probs)")
        return seen["got"]

    err = check_layer(lambda x: attention_forward.plain(x, n_head), backward, {"qkv": qkv})
    got, library = seen["got"], seen["library"]
    per_part = ", ".join(f"{name} {rel_error(ours, lib):.0e}" for name, ours, lib in
                         zip(("dq", "dk", "dv"), _parts(got), _parts(library), strict=True))
    _verdict(got, library, _catalogue(BACKWARD_MISTAKES, *seen["inputs"]),
             f"finite differences disagree by {err['qkv']:.0e}; the parts against the library: "
             f"{per_part}. Start with the worst part")
    assert err["qkv"] < GRAD_TOL, (f"relative error {err['qkv']:.1e} against finite "
                                   f"differences (want < {GRAD_TOL:.0e})")


EXERCISES = {
    "attention_one_head": Exercise(solution=one_head, check=check_one_head,
                                   mistakes=ONE_HEAD_MISTAKES),
    "attention_split_heads": Exercise(
        solution=split_heads_by_hand, check=check_split_heads, library=(split_heads,),
        mistakes=(*SPLIT_MISTAKES, Mistake(_split_with_the_library, SWITCHED_OFF))),
    "attention_merge_heads": Exercise(
        solution=merge_heads_by_hand, check=check_merge_heads, library=(merge_heads,),
        mistakes=(*MERGE_MISTAKES, Mistake(_merge_with_the_library, SWITCHED_OFF))),
    "attention_causal_mask": Exercise(
        solution=build_causal_mask, check=check_causal_mask, library=(causal_mask,),
        mistakes=(Mistake(_mask_transposed, "that is the transpose"),
                  Mistake(_mask_without_diagonal, "the diagonal is missing"),
                  Mistake(_mask_from_the_library, SWITCHED_OFF))),
    "attention_masked_softmax": Exercise(
        solution=masked_softmax, check=check_masked_softmax,
        library=(causal_softmax, causal_softmax_in_place),
        mistakes=(*SOFTMAX_MISTAKES, Mistake(_softmax_without_the_max, OVERFLOW),
                  Mistake(_softmax_from_the_library, SWITCHED_OFF))),
    "attention_sublayer": Exercise(
        solution=attention_sublayer, check=check_sublayer,
        library=(attention_forward, attention_forward_by_blocks, attend),
        mistakes=(*SUBLAYER_MISTAKES, Mistake(_sublayer_from_the_library, SWITCHED_OFF))),
    "attention_param_count": Exercise(
        solution=attention_param_count(), check=check_param_count,
        mistakes=(Mistake(768 * 3 * 768 + 768 * 768, "you forgot the two biases"),
                  Mistake(12 * attention_param_count(), "the heads share c_attn and c_proj"))),
    "attention_softmax_backward": Exercise(
        solution=softmax_backward_by_hand, check=check_softmax_backward,
        mistakes=(*SOFTMAX_BACKWARD_MISTAKES,
                  Mistake(_softmax_backward_without_keepdims, KEEPDIMS))),
    "attention_row_term": Exercise(
        solution=row_term_from_output, check=check_row_term,
        mistakes=(Mistake(_row_term_without_keepdims, KEEPDIMS),
                  Mistake(_row_term_over_queries, "sum over the hs channels of each query"),
                  Mistake(_row_term_of_sums, "move the sum over k inside the dot product"))),
    "attention_backward_by_hand": Exercise(
        solution=attention_backward_by_hand, check=check_attention_backward,
        library=(attention_backward, attention_backward_by_blocks, attend_backward),
        mistakes=(*BACKWARD_MISTAKES, Mistake(_backward_from_the_library, SWITCHED_OFF))),
}
