"""Exercises of lesson 05 (supervised fine-tuning), with their checks.

    finetuning_entailment_layout          [s] premise [d] hypothesis [e] as ids, and where [e] is
    finetuning_classify                   gather the extract states, apply W_y and b, softmax
    finetuning_head_backward              dlogits -> dh (at the extract positions only), dW, db
    finetuning_similarity_representation  both orderings through the body, extract states added
    finetuning_choice_loss                L2 over the K answers of each question, and dscores

Each check builds its own small tokenizer or float64 model from a fixed seed and compares the
student's answer with the library (encode_example, TaskModel's scores, loss and gradients),
and the backward passes with central finite differences (minigpt1.gradcheck). While the
answer runs, the library functions that would answer the exercise are switched off.
"""

from functools import cache

import numpy as np

from minigpt1.config import GPTConfig
from minigpt1.finetuning.task_model import TaskModel
from minigpt1.finetuning.transformations import (
    SPECIAL_TOKENS,
    EncodedExample,
    Example,
    TaskSpec,
    encode_example,
    encode_examples,
    make_batch,
    transform,
)
from minigpt1.gradcheck import check_layer, numerical_gradient, rel_error
from minigpt1.layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
)
from minigpt1.model.gpt import GPT
from minigpt1.tokenizer.bpe import BPETokenizer

from .base import SWITCHED_OFF, Exercise, Mistake, as_array

TOL = 1e-6  # float64: a right gradient agrees to about 1e-9, a wrong one to 1e-2 or worse
PAIRS = [("It rains.", "The street is wet."), ("O Romeo, Romeo!", "Wherefore art thou?"),
         ("a", "b"), ("To be, or not to be", "that is the question")]


@cache
def small_tokenizer():
    """A byte-level BPE of 270 tokens plus the three special tokens (trained in milliseconds)."""
    text = "to be or not to be, that is the question; it rains and the street is wet. " * 3
    tokenizer = BPETokenizer.train([text], vocab_size=270, mode="bytes", progress=False)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def tiny_task_model(spec, vocab_size, n_embd=16, head_scale=1.0, seed=0):
    """A one-block float64 GPT with a task head of weights N(0, head_scale) and a non-zero
    bias (so that a forgotten b, or a head too weak to matter, cannot go unseen).

    The body's weights are drawn from N(0, 0.5^2), not GPT-1's N(0, 0.02^2): at 0.02 a fresh
    block barely mixes the tokens, and the extract state of [s] A [d] B [e] would equal that
    of [s] B [d] A [e] to 1e-8, so a check could not tell one ordering from both."""
    cfg = GPTConfig.preset("tiny", vocab_size=vocab_size, n_ctx=64, n_layer=1, n_embd=n_embd,
                           n_head=2, initializer_range=0.5)
    model = TaskModel(GPT(cfg, seed=seed, dtype="float64"), spec, seed=seed)
    rng = np.random.default_rng(seed + 1)
    model.params["clf.weight"][:] = rng.normal(0, head_scale, model.params["clf.weight"].shape)
    model.params["clf.bias"][:] = rng.normal(0, 0.5, model.params["clf.bias"].shape)
    return model


def random_batch(rng, vocab_size, lengths, n_classes):
    """A classification batch of random texts of these lengths: [s] text [e], padded with 0,
    so the extract token sits at a different position in each row."""
    start, extract = vocab_size, vocab_size + 2  # the special ids follow the V plain tokens
    encoded = [EncodedExample(((start, *rng.integers(1, vocab_size, size=n), extract),),
                              int(rng.integers(0, n_classes)), False) for n in lengths]
    return make_batch(encoded)


def _softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


# ---- 1. the entailment layout --------------------------------------------------------------


def entailment_layout(premise, hypothesis, tokenizer):
    """Token ids of [s] premise [d] hypothesis [e], and the position of [e]."""
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    ids = [start, *tokenizer.encode(premise), delimiter, *tokenizer.encode(hypothesis), extract]
    return ids, len(ids) - 1  # the extract token is the last one


def _layout_hint(ids, premise, hypothesis, tokenizer):
    """What a wrong layout got wrong, when it is a common slip."""
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    p, h = tokenizer.encode(premise), tokenizer.encode(hypothesis)
    slips = {
        "the _delimiter_ token is missing between the premise and the hypothesis":
            [start, *p, *h, extract],
        "the _start_ token is missing: every task input begins with it": [*p, delimiter, *h,
                                                                          extract],
        "the _classify_ (extract) token is missing at the end": [start, *p, delimiter, *h],
        "the premise comes first, then the delimiter, then the hypothesis":
            [start, *h, delimiter, *p, extract],
    }
    return next((hint for hint, slip in slips.items() if ids == slip),
                "the layout is _start_, the premise's tokens, _delimiter_, the hypothesis's "
                "tokens, _classify_ (tokenizer.special_id(name) gives the three special ids)")


def check_entailment_layout(answer):
    tokenizer = small_tokenizer()
    spec = TaskSpec("nli", "entailment", ("no", "yes"), "accuracy")
    for premise, hypothesis in PAIRS:
        (sequence,) = encode_example(Example((premise, hypothesis), 1), spec, tokenizer,
                                     128).sequences
        got = answer(premise, hypothesis, tokenizer)
        assert got is not None and len(got) == 2, "return a pair: (ids, extract_position)"
        ids, position = [int(i) for i in got[0]], int(got[1])
        assert ids == list(sequence), (
            f"for ({premise!r}, {hypothesis!r}) expected ids {list(sequence)}, got {ids}: "
            + _layout_hint(ids, premise, hypothesis, tokenizer))
        assert position == len(sequence) - 1, (
            f"the extract token sits at position {len(sequence) - 1}, not {position}: positions "
            "count from 0, so the last of n tokens is at n - 1")


def _layout_from_the_library(premise, hypothesis, tokenizer):
    spec = TaskSpec("nli", "entailment", ("no", "yes"), "accuracy")
    (ids,) = encode_example(Example((premise, hypothesis), 0), spec, tokenizer, 128).sequences
    return list(ids), len(ids) - 1


def _layout_without_delimiter(premise, hypothesis, tokenizer):
    start, _, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    ids = [start, *tokenizer.encode(premise), *tokenizer.encode(hypothesis), extract]
    return ids, len(ids) - 1


def _layout_position_is_the_length(premise, hypothesis, tokenizer):
    ids, _ = entailment_layout(premise, hypothesis, tokenizer)
    return ids, len(ids)  # one past the last token


def _layout_swapped(premise, hypothesis, tokenizer):
    return entailment_layout(hypothesis, premise, tokenizer)


# ---- 2. the classifier on the extract token ------------------------------------------------


def classify(h, extract, weight, bias):
    """Class probabilities softmax(h[b, extract[b]] W_y + b) for a batch.

    h (B, T, C) final hidden states, extract (B,) positions, weight (C, n), bias (n,)."""
    z = h[np.arange(len(extract)), extract]  # (B, C): the extract token's final state
    logits = z @ weight + bias  # (B, n)
    logits = logits - logits.max(axis=1, keepdims=True)  # softmax is shift-invariant: no overflow
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)  # (B, n), each row sums to 1


def check_classify(answer):
    rng = np.random.default_rng(0)
    V = 40
    spec = TaskSpec("cls", "classification", ("a", "b", "c"), "accuracy")
    model = tiny_task_model(spec, V + 3, n_embd=32)
    batch = random_batch(rng, V, (3, 7, 5, 2), n_classes=3)  # the extract token is not always last
    h, _ = model.gpt.body_forward(batch.ids[:, 0])  # (B, T, C)
    weight, bias = model.params["clf.weight"], model.params["clf.bias"]
    logits = model.scores(batch)  # (B, n): the library's head, dropout off
    expected = _softmax(logits)
    got = as_array(answer(h.copy(), batch.extract[:, 0].copy(), weight.copy(), bias.copy()),
                    expected.shape, "classify(...)")
    assert np.allclose(got.sum(axis=1), 1.0), (
        "each row of probabilities must sum to 1: the softmax runs over the n classes of one "
        "example (axis 1), not over the batch")
    if not np.allclose(got, expected, atol=1e-8):
        last = h[:, -1] @ weight + bias  # (B, n): the last position, padding included
        assert not np.allclose(got, _softmax(last), atol=1e-8), (
            "you read the last position of each row, which is padding in the shorter rows: take "
            "h at each row's own extract position")
        assert not np.allclose(got, _softmax(logits - bias), atol=1e-8), (
            "the bias is missing: the logits are z W_y + b")
        raise AssertionError(
            "the probabilities differ from the library's: take h at each row's own extract "
            "position, then z @ W + b, then a softmax over the classes")
    with np.errstate(all="ignore"):  # large logits: a softmax without its shift overflows
        got = np.asarray(answer(h.copy(), batch.extract[:, 0].copy(), 1000 * weight, bias))
    assert np.allclose(got, _softmax(1000 * (logits - bias) + bias), atol=1e-8), (
        "with large logits exp overflows (inf / inf = nan): subtract each row's maximum logit "
        "before np.exp; the softmax does not change")


def _classify_with_the_library(h, extract, weight, bias):
    z = h[np.arange(len(extract)), extract]
    return _softmax(linear_forward(z, weight, bias)[0])


def _classify_at_the_last_position(h, extract, weight, bias):
    return classify(h, np.full_like(extract, h.shape[1] - 1), weight, bias)


def _classify_without_bias(h, extract, weight, bias):
    return classify(h, extract, weight, np.zeros_like(bias))


def _classify_softmax_over_the_batch(h, extract, weight, bias):
    logits = h[np.arange(len(extract)), extract] @ weight + bias
    return _softmax(logits, axis=0)


def _classify_without_shift(h, extract, weight, bias):
    p = np.exp(h[np.arange(len(extract)), extract] @ weight + bias)
    return p / p.sum(axis=1, keepdims=True)


# ---- 3. the head's backward ----------------------------------------------------------------


def head_backward(dlogits, h, extract, weight):
    """Gradients of the head logits = h[b, extract[b]] W + b, from dlogits (B, n).

    h (B, T, C), extract (B,), weight (C, n) -> dh (B, T, C), dweight (C, n), dbias (n,)."""
    rows = np.arange(len(extract))
    z = h[rows, extract]  # (B, C): what the head read
    dweight = z.T @ dlogits  # (C, n): every example adds its outer product z_b^T dlogits_b
    dbias = dlogits.sum(axis=0)  # (n,): b is added to every row
    dh = np.zeros_like(h)  # (B, T, C): the head read one position per row, nothing else
    dh[rows, extract] = dlogits @ weight.T  # (B, C) scattered to the extract positions
    return dh, dweight, dbias


def _head_forward(h, extract):
    """The head as the library computes it, for gradient checking: (h, W, b) -> logits."""
    rows = np.arange(len(extract))

    def forward(h, weight, bias):
        logits, _ = linear_forward(h[rows, extract], weight, bias)  # (B, n)
        return logits, (h, weight)

    return forward


def _head_gradients(answer, dlogits, h, extract, weight):
    got = answer(dlogits.copy(), h.copy(), extract.copy(), weight.copy())
    assert got is not None and len(got) == 3, "return three arrays: (dh, dweight, dbias)"
    C, n = weight.shape  # (C, n)
    dh, dweight, dbias = (np.asarray(g, dtype=np.float64) for g in got)
    assert dh.shape == h.shape, (
        f"dh has shape {dh.shape}, expected h's {h.shape}: the head read h at one position per "
        "row, so its gradient is an array of zeros shaped like h, filled at those positions")
    assert dweight.shape != (n, C), (
        f"dweight has shape {dweight.shape}: it is transposed. W is (C, n), and so is dW = "
        "z^T dlogits")
    assert dweight.shape == (C, n), f"dweight has shape {dweight.shape}, expected W's {(C, n)}"
    assert dbias.shape == (n,), (
        f"dbias has shape {dbias.shape}, expected {(n,)}: b is added to every row, so its "
        "gradient is dlogits summed over the batch")
    return dh, dweight, dbias


def check_head_backward(answer):
    rng = np.random.default_rng(5)
    V = 30
    spec = TaskSpec("cls", "classification", ("a", "b", "c", "d"), "accuracy")
    model = tiny_task_model(spec, V + 3, head_scale=0.3)  # C = 16, n = 4
    # B = 3, T = 11: in the shorter rows padding follows the extract token
    batch = random_batch(rng, V, (4, 9, 6), n_classes=4)
    ids, extract = batch.ids[:, 0], batch.extract[:, 0]
    h, body = model.gpt.body_forward(ids)  # (B, T, C)
    _, ce = cross_entropy_forward(model.scores(batch), batch.labels)
    dlogits = cross_entropy_backward(1.0, ce)  # (B, n): what L2 sends into the head
    weight = model.params["clf.weight"]
    dh, dweight, dbias = _head_gradients(answer, dlogits, h, extract, weight)
    elsewhere = np.ones(h.shape[:2], dtype=bool)
    elsewhere[np.arange(len(extract)), extract] = False
    assert not np.abs(dh[elsewhere]).max() > 0, (
        "dh is non-zero away from the extract tokens: the head read only the extract position "
        "of each row, so only there does h receive gradient (zeros elsewhere, padding included)")

    def backward(dy, cache):
        h, weight = cache
        return _head_gradients(answer, dy, h, extract, weight)

    inputs = {"h": h.copy(), "weight": weight.copy(), "bias": model.params["clf.bias"].copy()}
    errors = check_layer(_head_forward(h, extract), backward, inputs, seed=5)
    assert errors["bias"] < TOL, (
        f"dbias: relative error {errors['bias']:.1e} against finite differences. b is added "
        "to every row, so db sums dlogits over the batch (a sum, not a mean: any 1/B is "
        "already inside dlogits)")
    assert errors["weight"] < TOL, (
        f"dweight: relative error {errors['weight']:.1e} against finite differences. dW = z^T "
        "dlogits, with z the extract tokens' states (B, C), summed over the batch")
    assert errors["h"] < TOL, (
        f"dh: relative error {errors['h']:.1e} against finite differences. The extract states "
        "get dz = dlogits W^T (B, C), written at each row's extract position")
    # the library's L2 gradients: the head's, and the body's when dh flows back through it
    _, grads, _ = model.finetune_loss_and_grads(batch, lm_coef=0.0)
    body_grads = model.gpt.body_backward(dh.copy(), body)
    for name, yours in [*body_grads.items(), ("clf.weight", dweight), ("clf.bias", dbias)]:
        assert rel_error(yours, grads[name]) < TOL, (
            f"{name} differs from TaskModel.finetune_loss_and_grads: check dh, dW and db "
            "against the formulas above the exercise")


def _head_backward_with_the_library(dlogits, h, extract, weight):
    rows = np.arange(len(extract))
    _, cache = linear_forward(h[rows, extract], weight, np.zeros(weight.shape[1]))
    dz, dweight, dbias = linear_backward(dlogits, cache)
    dh = np.zeros_like(h)
    dh[rows, extract] = dz
    return dh, dweight, dbias


def _head_backward_transposed(dlogits, h, extract, weight):
    dh, dweight, dbias = head_backward(dlogits, h, extract, weight)
    return dh, dweight.T, dbias  # dlogits^T z


def _head_backward_everywhere(dlogits, h, extract, weight):
    _, dweight, dbias = head_backward(dlogits, h, extract, weight)
    dz = dlogits @ weight.T  # (B, C)
    return np.broadcast_to(dz[:, None, :], h.shape).copy(), dweight, dbias


def _head_backward_bias_per_row(dlogits, h, extract, weight):
    dh, dweight, _ = head_backward(dlogits, h, extract, weight)
    return dh, dweight, dlogits  # (B, n): never summed over the batch


def _head_backward_bias_mean(dlogits, h, extract, weight):
    dh, dweight, _ = head_backward(dlogits, h, extract, weight)
    return dh, dweight, dlogits.mean(axis=0)


def _head_backward_at_the_last_position(dlogits, h, extract, weight):
    last = np.full_like(extract, h.shape[1] - 1)
    dh, _, dbias = head_backward(dlogits, h, last, weight)
    _, dweight, _ = head_backward(dlogits, h, extract, weight)
    return dh, dweight, dbias


# ---- 4. the similarity path: both orderings, added -----------------------------------------


def similarity_representation(gpt, tokenizer, a, b):
    """h_l^m of [s] a [d] b [e] plus h_l^m of [s] b [d] a [e]: (C,), what the head reads."""
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    a, b = tokenizer.encode(a), tokenizer.encode(b)
    orderings = np.array([[start, *a, delimiter, *b, extract],
                          [start, *b, delimiter, *a, extract]])  # (2, T): equal lengths
    h, _ = gpt.body_forward(orderings)  # (2, T, C)
    return h[:, -1].sum(axis=0)  # (C,): the two extract states, added


def check_similarity_representation(answer):
    tokenizer = small_tokenizer()
    C = 16
    # a head of C classes, W = I and b = 0: the library's logits are its summed representation
    spec = TaskSpec("sim", "similarity", tuple(f"c{i}" for i in range(C)), "accuracy")
    model = tiny_task_model(spec, tokenizer.vocab_size, n_embd=C)
    model.params["clf.weight"][:] = np.eye(C)
    model.params["clf.bias"][:] = 0.0
    for a, b in PAIRS:
        encoded = encode_example(Example((a, b), 0), spec, tokenizer, model.gpt.cfg.n_ctx)
        expected = model.scores(make_batch([encoded]))[0]  # (C,)
        orderings = [model.gpt.body_forward(np.array([s]))[0][0, -1] for s in encoded.sequences]
        got = answer(model.gpt, tokenizer, a, b)
        assert got is not None, "return the summed representation, an array of shape (C,)"
        got = np.asarray(got, dtype=np.float64)
        assert got.shape != (2 * C,), (
            f"shape {got.shape}: the two extract states are concatenated. The head W_y is "
            f"(C, n) and reads one C-vector: add the two orderings' states elementwise")
        assert got.shape == (C,), f"expected shape ({C},), one C-vector, got {got.shape}"
        if np.allclose(got, expected, atol=1e-8):
            continue
        assert not any(np.allclose(got, z, atol=1e-8) for z in orderings), (
            f"for ({a!r}, {b!r}) that is one ordering only: similarity has no natural order, "
            "so the model reads [s] A [d] B [e] and [s] B [d] A [e] and adds the two extract "
            "states")
        assert not np.allclose(got, expected / 2, atol=1e-8), (
            "that is the mean of the two orderings: the paper adds them (a sum, not an average)")
        raise AssertionError(
            f"for ({a!r}, {b!r}) your representation differs from the library's: build both "
            "orderings, [s] A [d] B [e] and [s] B [d] A [e], run them through gpt.body_forward "
            "and add the final states of their extract tokens (the last position)")


def _similarity_with_the_library(gpt, tokenizer, a, b):
    ids = [tokenizer.encode(a), tokenizer.encode(b)]
    specials = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    h, _ = gpt.body_forward(np.array(transform("similarity", ids, *specials)))
    return h[:, -1].sum(axis=0)


def _similarity_one_ordering(gpt, tokenizer, a, b):
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    ids = [start, *tokenizer.encode(a), delimiter, *tokenizer.encode(b), extract]
    h, _ = gpt.body_forward(np.array([ids]))
    return h[0, -1]


def _similarity_concatenated(gpt, tokenizer, a, b):
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    a, b = tokenizer.encode(a), tokenizer.encode(b)
    h, _ = gpt.body_forward(np.array([[start, *a, delimiter, *b, extract],
                                      [start, *b, delimiter, *a, extract]]))
    return np.concatenate([h[0, -1], h[1, -1]])  # (2C,)


def _similarity_mean(gpt, tokenizer, a, b):
    return similarity_representation(gpt, tokenizer, a, b) / 2


# ---- 5. multiple choice: a softmax over the answers ----------------------------------------


def choice_loss(scores, labels):
    """L2 for multiple choice and its gradient: scores (B, K), one per answer; labels (B,).

    loss = -mean_b log softmax(scores_b)[labels_b], the softmax over each question's K
    answers; dscores = (softmax(scores) - onehot(labels)) / B, shape (B, K)."""
    B = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)  # (B, K): no overflow in exp
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (B, K)
    rows = np.arange(B)
    loss = -log_p[rows, labels].mean()
    dscores = np.exp(log_p)  # (B, K): the softmax over the answers
    dscores[rows, labels] -= 1.0
    return loss, dscores / B


def choice_batch(rng, vocab_size, n_questions, n_answers):
    """Multiple-choice examples of random token ids: [s] context [d] answer_k [e], k = 1..K,
    answers of different lengths (so the extract positions differ)."""
    start, delimiter, extract = vocab_size, vocab_size + 1, vocab_size + 2
    encoded = []
    for _ in range(n_questions):
        context = rng.integers(1, vocab_size, size=int(rng.integers(2, 6)))
        answers = [rng.integers(1, vocab_size, size=int(rng.integers(1, 5)))
                   for _ in range(n_answers)]
        sequences = tuple((start, *context, delimiter, *answer, extract) for answer in answers)
        encoded.append(EncodedExample(sequences, int(rng.integers(0, n_answers)), False))
    return make_batch(encoded)


def _choice_result(answer, scores, labels):
    got = answer(scores.copy(), labels.copy())
    assert got is not None and len(got) == 2, "return a pair: (loss, dscores)"
    loss = float(np.asarray(got[0]).reshape(-1)[0]) if np.size(got[0]) == 1 else None
    assert loss is not None, f"the loss is one number, got an array of shape {np.shape(got[0])}"
    return loss, as_array(got[1], scores.shape, "dscores")


def check_choice_loss(answer):
    rng = np.random.default_rng(7)
    V, K = 30, 3
    spec = TaskSpec("story", "multiple_choice", tuple("ABC"), "accuracy")
    model = tiny_task_model(spec, V + 3, head_scale=0.5)  # n = 1: one score per sequence
    batch = choice_batch(rng, V, n_questions=5, n_answers=K)  # ids (B, K, T)
    expected_loss, scores = model.evaluate(batch)  # the library's L2 and scores (B, K)
    labels = batch.labels
    loss, dscores = _choice_result(answer, scores, labels)
    B = len(labels)
    over_batch = -np.log(_softmax(scores, axis=0)[np.arange(B), labels]).mean()
    assert not np.isclose(loss, over_batch), (
        "the softmax ran over the batch (axis 0): it runs over the K answers of each question "
        "(axis 1), since each question's answers compete with each other, not with other "
        "questions")
    assert not np.isclose(loss, B * expected_loss), (
        f"the loss is {B} times too large: L2 is the mean over the B questions, not the sum")
    assert np.isclose(loss, expected_loss, rtol=1e-9, atol=1e-12), (
        f"your loss is {loss:.6f}, the library's L2 on the same scores is {expected_loss:.6f}: "
        "loss = -mean over questions of log softmax(scores)[right answer], the softmax over the "
        "answers")
    numerical = numerical_gradient(lambda: _choice_result(answer, scores, labels)[0], scores)
    err = rel_error(dscores, numerical.reshape(scores.shape))
    if err >= TOL:
        right = cross_entropy_backward(1.0, cross_entropy_forward(scores, labels)[1])
        assert not np.allclose(dscores, B * right), (
            f"dscores is {B} times too large: the loss is a mean over the B questions, so "
            "divide by B")
        assert not np.allclose(dscores, B * right + np.eye(K)[labels]), (
            "that is the softmax alone: subtract 1 at each question's right answer, then divide "
            "by B")
        raise AssertionError(
            f"dscores: relative error {err:.1e} against finite differences of your loss. The "
            "gradient of softmax cross-entropy is (softmax(scores) - onehot(labels)) / B")
    with np.errstate(all="ignore"):  # large scores: a softmax without its shift overflows
        big_loss, big_grad = _choice_result(answer, scores + 1000.0, labels)
    assert np.isclose(big_loss, expected_loss) and np.allclose(big_grad, dscores), (
        "adding 1000 to every score changes your answer (exp overflows to inf): subtract each "
        "question's maximum score before np.exp; the softmax does not change")


def _choice_with_the_library(scores, labels):
    loss, cache = cross_entropy_forward(scores, labels)
    return loss, cross_entropy_backward(1.0, cache)


def _choice_softmax_over_the_batch(scores, labels):
    rows = np.arange(len(labels))
    p = _softmax(scores, axis=0)  # (B, K): each answer's column normalised over the questions
    onehot = np.eye(scores.shape[1])[labels]
    return -np.log(p[rows, labels]).mean(), (p - onehot) / len(labels)


def _choice_loss_summed(scores, labels):
    loss, dscores = choice_loss(scores, labels)
    return loss * len(labels), dscores


def _choice_gradient_without_mean(scores, labels):
    loss, dscores = choice_loss(scores, labels)
    return loss, dscores * len(labels)


def _choice_without_shift(scores, labels):
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    onehot = np.eye(scores.shape[1])[labels]
    return -np.log(p[rows, labels]).mean(), (p - onehot) / len(labels)


EXERCISES = {
    "finetuning_entailment_layout": Exercise(
        solution=entailment_layout, check=check_entailment_layout,
        library=(encode_example, encode_examples, transform),
        mistakes=(Mistake(_layout_from_the_library, SWITCHED_OFF),
                  Mistake(_layout_without_delimiter, "_delimiter_ token is missing"),
                  Mistake(_layout_position_is_the_length, "positions count from 0"),
                  Mistake(_layout_swapped, "the premise comes first"))),
    "finetuning_classify": Exercise(
        solution=classify, check=check_classify, library=(linear_forward, TaskModel._forward),
        mistakes=(Mistake(_classify_with_the_library, SWITCHED_OFF),
                  Mistake(_classify_at_the_last_position, "each row's own extract position"),
                  Mistake(_classify_without_bias, "the bias is missing"),
                  Mistake(_classify_softmax_over_the_batch, "not over the batch"),
                  Mistake(_classify_without_shift, "subtract each row's maximum logit"))),
    "finetuning_head_backward": Exercise(
        solution=head_backward, check=check_head_backward,
        library=(linear_backward, TaskModel.finetune_loss_and_grads),
        mistakes=(Mistake(_head_backward_with_the_library, SWITCHED_OFF),
                  Mistake(_head_backward_transposed, "it is transposed"),
                  Mistake(_head_backward_everywhere, "non-zero away from the extract tokens"),
                  Mistake(_head_backward_at_the_last_position,
                          "non-zero away from the extract tokens"),
                  Mistake(_head_backward_bias_per_row, "summed over the batch"),
                  Mistake(_head_backward_bias_mean, "a sum, not a mean"))),
    "finetuning_similarity_representation": Exercise(
        solution=similarity_representation, check=check_similarity_representation,
        library=(transform, encode_example, encode_examples, TaskModel._forward),
        mistakes=(Mistake(_similarity_with_the_library, SWITCHED_OFF),
                  Mistake(_similarity_one_ordering, "one ordering only"),
                  Mistake(_similarity_concatenated, "concatenated"),
                  Mistake(_similarity_mean, "a sum, not an average"))),
    "finetuning_choice_loss": Exercise(
        solution=choice_loss, check=check_choice_loss,
        library=(cross_entropy_forward, cross_entropy_backward, TaskModel._forward),
        mistakes=(Mistake(_choice_with_the_library, SWITCHED_OFF),
                  Mistake(_choice_softmax_over_the_batch, "runs over the K answers"),
                  Mistake(_choice_loss_summed, "not the sum"),
                  Mistake(_choice_gradient_without_mean, "so divide by B"),
                  Mistake(_choice_without_shift, "subtract each question's maximum score"))),
}
