"""The four input transformations: exact token layouts, truncation, batches."""

import numpy as np
import pytest

from minigpt1.finetuning.transformations import (
    SPECIAL_TOKENS,
    EncodedExample,
    Example,
    TaskSpec,
    encode_example,
    fit_pair,
    make_batch,
    show_layout,
    transform,
)
from minigpt1.tokenizer.bpe import BPETokenizer

S, D, E = 100, 101, 102  # start, delimiter, extract
SPECS = {
    "classification": TaskSpec("c", "classification", ("no", "yes"), "accuracy"),
    "entailment": TaskSpec("e", "entailment", ("no", "yes"), "accuracy"),
    "similarity": TaskSpec("s", "similarity", ("no", "yes"), "f1"),
    "multiple_choice": TaskSpec("m", "multiple_choice", ("A", "B", "C"), "accuracy"),
}


@pytest.mark.parametrize("kind, segments, expected", [
    ("classification", [[1, 2, 3]], [[S, 1, 2, 3, E]]),
    ("entailment", [[1, 2], [3]], [[S, 1, 2, D, 3, E]]),
    ("similarity", [[1, 2], [3]], [[S, 1, 2, D, 3, E], [S, 3, D, 1, 2, E]]),
    ("multiple_choice", [[1, 2], [3], [4, 5], [6]],
     [[S, 1, 2, D, 3, E], [S, 1, 2, D, 4, 5, E], [S, 1, 2, D, 6, E]]),
])  # fmt: skip
def test_transformations(kind, segments, expected):
    assert transform(kind, segments, S, D, E) == expected


def test_batch_pads_and_points_at_the_extract_token():
    encoded = [EncodedExample(((S, 1, 2, D, 3, E), (S, 3, D, 1, 2, E)), 1, False),
               EncodedExample(((S, 4, D, 5, E), (S, 5, D, 4, E)), 0, False)]
    batch = make_batch(encoded)
    assert batch.ids.shape == (2, 2, 6) and batch.ids.dtype == np.int64
    assert batch.ids[1, 0].tolist() == [S, 4, D, 5, E, 0]  # padded with 0
    assert batch.mask[1, 0].tolist() == [1, 1, 1, 1, 1, 0]
    assert batch.extract.tolist() == [[5, 5], [4, 4]]
    assert np.all(batch.ids[np.arange(2)[:, None], np.arange(2), batch.extract] == E)
    assert batch.labels.tolist() == [1, 0]
    assert make_batch(encoded, regression=True).labels.dtype == np.float32


def test_fit_pair_keeps_the_words_beside_the_delimiter():
    first, second = list(range(10)), list(range(100, 104))
    a, b = fit_pair(first, second, 8)
    assert a == [6, 7, 8, 9] and b == [100, 101, 102, 103]  # the longer one lost its start
    a, b = fit_pair(list(range(3)), list(range(100, 110)), 6)
    assert a == [0, 1, 2] and b == [100, 101, 102]  # the second loses its end
    assert fit_pair([1], [2], 5) == ([1], [2])


@pytest.fixture(scope="module")
def tokenizer():
    tok = BPETokenizer.train(["the cat sat on the mat. the dog ran."] * 4, vocab_size=280,
                             mode="bytes", progress=False)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def test_encode_example_layout(tokenizer):
    example = Example(("the cat", " sat", " ran"), 1, "fixture:7")
    spec = TaskSpec("m", "multiple_choice", ("A", "B"), "accuracy")
    encoded = encode_example(example, spec, tokenizer, n_ctx=64)
    s, d, e = (tokenizer.special_id(n) for n in SPECIAL_TOKENS)
    context = tokenizer.encode("the cat")
    assert encoded.sequences == (
        (s, *context, d, *tokenizer.encode(" sat"), e),
        (s, *context, d, *tokenizer.encode(" ran"), e),
    )
    assert not encoded.truncated and encoded.label == 1 and encoded.source == "fixture:7"
    shown = show_layout(encoded, tokenizer)
    assert "[_start_]" in shown and "[_delimiter_]" in shown and "[_classify_]" in shown
    assert f"extract at position {len(encoded.sequences[0]) - 1}" in shown


@pytest.mark.parametrize("kind", list(SPECS))
def test_truncation_keeps_the_extract_token(tokenizer, kind):
    spec = SPECS[kind]
    long_text = "the cat sat on the mat. " * 20
    example = Example((long_text,) * spec.n_segments, 0, "long.tsv:3")
    encoded = encode_example(example, spec, tokenizer, n_ctx=16)
    assert encoded.truncated
    for sequence in encoded.sequences:
        assert len(sequence) <= 16 and sequence[-1] == tokenizer.special_id("_classify_")
    if kind == "multiple_choice":  # one shared context for all answers
        assert len({seq[: seq.index(tokenizer.special_id("_delimiter_"))]
                    for seq in encoded.sequences}) == 1
    with pytest.raises(ValueError, match=r"long.tsv:3: .* n_ctx=16"):
        encode_example(example, spec, tokenizer, n_ctx=16, allow_truncation=False)


def test_wrong_number_of_texts(tokenizer):
    with pytest.raises(ValueError, match="bad.tsv:2: .* needs 2 texts, got 1"):
        encode_example(Example(("only one",), 0, "bad.tsv:2"), SPECS["entailment"], tokenizer, 32)
