"""Fine-tuning tasks and the four input transformations of the paper's Figure 1 (right).

A fine-tuning task is a list of labelled examples of one of four kinds. GPT-1 never changes
its network for a task: it changes the input. Every example becomes one or more token
sequences that start with `_start_`, end with `_classify_` (the "extract" token, whose final
hidden state the linear head reads) and, when there are two pieces of text, separate them
with `_delimiter_` ($ in the paper):

    classification   [s] text [e]                                        1 sequence
    entailment       [s] premise [d] hypothesis [e]                      1 sequence
    similarity       [s] A [d] B [e]   and   [s] B [d] A [e]             2 sequences, summed
    multiple choice  [s] context [d] answer_k [e]    for k = 1..K        K sequences, softmax

The three special tokens are appended to the vocabulary after pre-training: the pre-trained
model has never seen them, and their embedding rows start as fresh N(0, 0.02) draws.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

KINDS = ("classification", "entailment", "similarity", "multiple_choice")
METRICS = ("accuracy", "f1", "matthews", "pearson")


@dataclass(frozen=True)
class Example:
    """One labelled example.

    segments, by kind:
        classification    (text,)
        entailment        (premise, hypothesis)
        similarity        (a, b)
        multiple_choice   (context, answer_1, ..., answer_K)
    label: an index into TaskSpec.labels (the class, or for multiple choice the right
        answer's position); a float for a regression task (TaskSpec.labels empty).
    source: where the example came from, "file:line", for error messages.
    """

    segments: tuple[str, ...]
    label: int | float
    source: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """What a task asks: its input kind, its label names and how it is scored."""

    name: str
    kind: str  # one of KINDS
    labels: tuple[str, ...]  # class names; answer names for multiple choice; () = regression
    metric: str  # one of METRICS
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.metric not in METRICS:
            raise ValueError(f"task {self.name}: metric {self.metric!r} is not one of {METRICS}")
        if self.kind == "multiple_choice" and len(self.labels) < 2:
            raise ValueError(f"task {self.name}: multiple choice needs at least 2 answers")

    @property
    def regression(self):
        """A real-valued target (STS-B's similarity score), trained with squared error."""
        return not self.labels

    @property
    def n_segments(self):
        """Texts per example: 1, 2, 2, or 1 context + K answers."""
        return {"classification": 1, "entailment": 2, "similarity": 2}.get(
            self.kind, 1 + len(self.labels))


@dataclass
class TaskData:
    """A task and its examples: splits["train"], splits["validation"], optionally ["test"]."""

    spec: TaskSpec
    splits: dict[str, list[Example]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The input transformations: texts -> token sequences

SPECIAL_TOKENS = ("_start_", "_delimiter_", "_classify_")  # GPT-1's names, in its order


@dataclass(frozen=True)
class EncodedExample:
    """An example as the model sees it: one token sequence per run of the transformer."""

    sequences: tuple[tuple[int, ...], ...]  # each ends with the extract token
    label: int | float
    truncated: bool  # some text was cut to fit n_ctx
    source: str = ""


def transform(kind, segments, start, delimiter, extract):
    """Token-id segments -> the sequences of Figure 1 (right), one list of ids each."""
    if kind == "classification":
        (text,) = segments
        return [[start, *text, extract]]
    if kind == "entailment":
        premise, hypothesis = segments
        return [[start, *premise, delimiter, *hypothesis, extract]]
    if kind == "similarity":
        # no natural order between two texts: the model reads both, and adds what it saw
        a, b = segments
        return [[start, *a, delimiter, *b, extract], [start, *b, delimiter, *a, extract]]
    context, *answers = segments
    return [[start, *context, delimiter, *answer, extract] for answer in answers]


def fit_pair(first, second, budget):
    """Shorten two segments until they hold at most `budget` tokens together.

    The longer one loses a token at a time: the first from its start, the second from its
    end, so the words on either side of the delimiter, which tie the two together, survive.
    """
    n_first, n_second = len(first), len(second)
    while n_first + n_second > budget:
        if n_first >= n_second:
            n_first -= 1
        else:
            n_second -= 1
    return first[len(first) - n_first :], second[:n_second]


def truncate(kind, segments, budget):
    """Segments cut to fit `budget` tokens per sequence (specials excluded).

    classification keeps the start of its text; two-part inputs go through fit_pair; for
    multiple choice the context and every answer are cut as the longest answer needs, so
    all K sequences share one context.
    """
    if kind == "classification":
        return [segments[0][:budget]]
    if kind in ("entailment", "similarity"):
        return list(fit_pair(segments[0], segments[1], budget))
    context, *answers = segments
    longest = max(answers, key=len)
    context, longest = fit_pair(context, longest, budget)
    return [context, *(answer[: len(longest)] for answer in answers)]


def encode_example(example, spec, tokenizer, n_ctx, allow_truncation=True):
    """One Example -> EncodedExample; the tokenizer must hold SPECIAL_TOKENS."""
    if len(example.segments) != spec.n_segments:
        raise ValueError(f"{example.source or spec.name}: a {spec.kind} example of task "
                         f"{spec.name} needs {spec.n_segments} texts, got {len(example.segments)}")
    start, delimiter, extract = (tokenizer.special_id(name) for name in SPECIAL_TOKENS)
    segments = [tokenizer.encode(text) for text in example.segments]
    budget = n_ctx - (2 if spec.kind == "classification" else 3)
    longest = max(len(s) for s in transform(spec.kind, segments, start, delimiter, extract))
    truncated = longest > n_ctx
    if truncated:
        if not allow_truncation:
            raise ValueError(
                f"{example.source or spec.name}: the example needs {longest} tokens but the "
                f"model has n_ctx={n_ctx} positions; allow truncation or shorten the texts")
        if budget < spec.n_segments:
            raise ValueError(f"n_ctx={n_ctx} leaves no room for the text of a {spec.kind} input")
        segments = truncate(spec.kind, segments, budget)
    sequences = transform(spec.kind, segments, start, delimiter, extract)
    return EncodedExample(tuple(map(tuple, sequences)), example.label, truncated, example.source)


def encode_examples(examples, spec, tokenizer, n_ctx, allow_truncation=True):
    return [encode_example(e, spec, tokenizer, n_ctx, allow_truncation) for e in examples]


def show_layout(example, tokenizer):
    """The token layout of an encoded example, for teaching: one line per sequence.

        sequence 1, 9 tokens, extract at position 8:
          [_start_] The| cat| sat [_delimiter_] It| sat [_classify_]
    """
    specials = set(tokenizer.special_tokens.values())
    lines = []
    for k, sequence in enumerate(example.sequences, 1):
        pieces = []
        for i in sequence:
            if i in specials:
                pieces.append(f" [{tokenizer.id_to_token(i)}] ")
            else:
                pieces.append(tokenizer.decode([i]).replace("\n", "⏎") + "|")
        shown = "".join(pieces).replace("| [", " [").strip()
        lines.append(f"sequence {k}, {len(sequence)} tokens, extract at position "
                     f"{len(sequence) - 1}:\n  {shown}")
    if example.truncated:
        lines.append("(text was cut to fit n_ctx; the extract token is always kept)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Batches: padded arrays


class TaskBatch(NamedTuple):
    ids: object  # (B, S, T) token ids, padded with 0 (S: sequences per example)
    mask: object  # (B, S, T) 1.0 on real tokens, 0.0 on padding
    extract: object  # (B, S) the position of each sequence's extract token
    labels: object  # (B,) class / answer index (int64), or target value (float32)


def make_batch(encoded, regression=False):
    """Pad a list of EncodedExamples to the longest sequence among them (NumPy arrays)."""
    B, S = len(encoded), len(encoded[0].sequences)
    T = max(len(seq) for example in encoded for seq in example.sequences)
    ids = np.zeros((B, S, T), dtype=np.int64)
    mask = np.zeros((B, S, T), dtype=np.float32)
    extract = np.zeros((B, S), dtype=np.int64)
    for b, example in enumerate(encoded):
        for s, seq in enumerate(example.sequences):
            ids[b, s, : len(seq)] = seq
            mask[b, s, : len(seq)] = 1.0
            extract[b, s] = len(seq) - 1
    labels = np.array([e.label for e in encoded], dtype=np.float32 if regression else np.int64)
    return TaskBatch(ids, mask, extract, labels)
