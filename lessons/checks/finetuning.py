"""Exercises of lesson 05_finetuning: the entailment layout, and the extract-token classifier.

    finetuning_entailment_layout   [s] premise [d] hypothesis [e] as token ids, and where [e] is
    finetuning_classify            gather the extract token's state, apply W_y and b, softmax

Each check builds its own small tokenizer or model with a fixed seed and compares the
student's answer with what the library (transformations.encode_example,
TaskModel.scores) computes.
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
    make_batch,
)
from minigpt1.model.gpt import GPT
from minigpt1.tokenizer.bpe import BPETokenizer

from .base import Exercise

PAIRS = [("It rains.", "The street is wet."), ("O Romeo, Romeo!", "Wherefore art thou?"),
         ("a", "b"), ("To be, or not to be", "that is the question")]


@cache
def small_tokenizer():
    """A byte-level BPE of 270 tokens plus the three special tokens (trained in milliseconds)."""
    text = "to be or not to be, that is the question; it rains and the street is wet. " * 3
    tokenizer = BPETokenizer.train([text], vocab_size=270, mode="bytes", progress=False)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


# ---- 1. the entailment layout --------------------------------------------------------------


def entailment_layout(premise, hypothesis, tokenizer):
    """Token ids of [s] premise [d] hypothesis [e], and the position of [e]."""
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    ids = [start, *tokenizer.encode(premise), delimiter, *tokenizer.encode(hypothesis), extract]
    return ids, len(ids) - 1  # the extract token is the last one


def check_entailment_layout(answer):
    tokenizer = small_tokenizer()
    spec = TaskSpec("nli", "entailment", ("no", "yes"), "accuracy")
    for premise, hypothesis in PAIRS:
        expected = encode_example(Example((premise, hypothesis), 1), spec, tokenizer, 128)
        (sequence,) = expected.sequences
        got = answer(premise, hypothesis, tokenizer)
        assert got is not None and len(got) == 2, "return a pair: (ids, extract_position)"
        ids, position = got
        ids = [int(i) for i in ids]
        assert ids == list(sequence), (
            f"for ({premise!r}, {hypothesis!r}) expected ids {list(sequence)}, got {ids}: the "
            "layout is _start_, the premise's tokens, _delimiter_, the hypothesis's tokens, "
            "_classify_ (ask tokenizer.special_id(name) for the three special ids)")
        assert int(position) == len(sequence) - 1, (
            f"the extract token sits at position {len(sequence) - 1} (positions count from 0), "
            f"not {position}")


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
    cfg = GPTConfig.preset("tiny", vocab_size=V + 3, n_layer=1, n_embd=32, n_head=2)
    spec = TaskSpec("cls", "classification", ("a", "b", "c"), "accuracy")
    model = TaskModel(GPT(cfg, seed=0, dtype="float64"), spec, seed=1)
    model.params["clf.bias"][:] = rng.normal(0, 0.5, 3)  # a non-zero bias: a forgotten b shows
    model.params["clf.weight"][:] = rng.normal(0, 1.0, (32, 3))
    encoded = [EncodedExample(((V, *rng.integers(0, V, size=n), V + 2),), 0, False)
               for n in (3, 7, 5)]  # different lengths: the extract token is not always last
    batch = make_batch(encoded)
    h, _ = model.gpt.body_forward(batch.ids[:, 0])  # (B, T, C)
    expected = np.exp(model.scores(batch))
    expected /= expected.sum(axis=1, keepdims=True)
    got = answer(h, batch.extract[:, 0], model.params["clf.weight"], model.params["clf.bias"])
    assert got is not None, "return the probabilities, an array of shape (B, n)"
    got = np.asarray(got)
    assert got.shape == expected.shape, f"expected shape {expected.shape}, got {got.shape}"
    assert np.allclose(got.sum(axis=1), 1.0), "each row of probabilities must sum to 1: softmax"
    assert np.allclose(got, expected, atol=1e-8), (
        "the probabilities differ from the library's: take h at each row's own extract "
        "position (padding follows it), then z @ W + b, then a softmax over the classes")


EXERCISES = {
    "finetuning_entailment_layout": Exercise(entailment_layout, check_entailment_layout),
    "finetuning_classify": Exercise(classify, check_classify),
}
