"""Four fine-tuning tasks cut from the Shakespeare corpus, for the paper's ablation at small scale.

    genre          classification   passage -> comedy / history / tragedy (poems left out)
    word-order     entailment       (passage, next passage) -> is the second as written, or
                                    the words inside each of its lines shuffled?
    same-work      similarity       (passage, passage) -> are they from the same work?
    next-line      multiple_choice  passage -> which of 4 lines of speech comes right after it?

Splits. Each work is cut as pre-training cuts it (corpus.val_start): its first 90% is the
"train" region, and its last 10% is cut at its line-aligned midpoint into "validation" and
"test". A split's examples use only lines of its own regions, so the pre-trained model never
read a validation or test example, and no line is in two splits. The title block and cast list
(up to and including the first line that starts with "ACT" or "SCENE", in any case) are left
out; poems have no such line and are taken whole.

Passages. A passage is a run of consecutive non-blank lines of one region (the blank lines
between them left out) joined with "\\n", taken greedily from the top of the region: lines are
added until it holds at least `min_chars` characters, and it never holds more than MAX_CHARS =
160, so that two passages and 3 special tokens fit 128 positions of a ~2.7 characters per token
BPE. A line that would push a shorter passage past 160 drops that passage and starts the next;
a line of more than 160 characters is skipped. Two passages are adjacent when the second starts
on the non-blank line right after the first ends. min_chars is 80, or a quarter of the region's
characters where that is less: the held-out regions of the sample corpus's 3,000-character
works hold about 150. A next-line context is the passage that ends right before its answer,
its lines taken backwards from there by the same rule.

Word order. Each line of the shuffled passage has its words (the runs of text between spaces,
punctuation attached) in a random order, one that differs from the line where the line has
one; a speaker tag of one word stays as it is. The two passages hold the same words, so only
their order tells them apart. This task replaced "continuation" (does the second passage come
right after the first, or from elsewhere in the play?), which stayed at chance from every
model, pre-trained or not: a 5M-parameter model does not tell one stretch of a play from
another. What Shakespeare's word order looks like it does learn, and only pre-training shows
it that.

Tiny regions. Next-line distractors come from the same work's region, so the task is about
local coherence, not about telling works apart. Only where that region has none to give (every
held-out region of the sample corpus, the shortest poems) are they drawn from the other works
of the same split.
"""

import re
from collections import Counter
from itertools import accumulate, islice
from typing import NamedTuple

import numpy as np

from ..corpus.text_folders import val_start
from .transformations import Example, TaskData, TaskSpec

SPLITS = ("train", "validation", "test")
PLAY_KINDS = ("comedy", "history", "tragedy")
MAX_CHARS = 160  # a passage never holds more characters than this
MIN_CHARS = 80  # ... and at least this many, unless its region is tiny (see above)
MIN_ANSWER_CHARS = 15  # a next-line answer is a line of speech at least this long
# caps per split; balancing comes first, so a cap is rounded down to a multiple of the classes
DEFAULT_MAX_EXAMPLES = {"train": 2000, "validation": 400, "test": 800}

SHAKESPEARE_TASKS = {spec.name: spec for spec in (
    TaskSpec("genre", "classification", PLAY_KINDS, "accuracy",
             "the kind of the play a passage comes from (poems left out)"),
    TaskSpec("word-order", "entailment", ("shuffled", "as written"), "accuracy",
             "is the passage after the first one as written, or are its lines' words shuffled?"),
    TaskSpec("same-work", "similarity", ("different", "same"), "accuracy",
             "are two non-adjacent passages from the same work?"),
    TaskSpec("next-line", "multiple_choice", ("A", "B", "C", "D"), "accuracy",
             "which of 4 lines of the same work comes right after the passage?"),
)}

HEADING = re.compile(r"(?i)(act|scene)\b")  # the first one ends the title block and cast list
CONNECTORS = {"of", "and", "de", "the", "la", "le", "du"}  # lower-case words in speaker tags


class Line(NamedTuple):
    number: int  # 1-based line number in the work's file
    text: str
    speech: bool  # a line of speech, fit to be a next-line answer


class Region(NamedTuple):
    work: str  # the work's slug
    kind: str | None
    lines: list[Line]  # the non-blank lines of one split of one work, in order
    min_chars: int  # a passage holds at least this many characters (see the module docstring)


class Passage(NamedTuple):
    region: Region
    index: int  # its place among the passages of its region
    first: int  # index of its first line in region.lines
    last: int  # index of its last line
    text: str

    @property
    def source(self):
        return f"{self.region.work}:line {self.region.lines[self.first].number}"


# ---------------------------------------------------------------------------------------------
# Regions, passages and lines of speech


def split_regions(doc) -> dict[str, Region]:
    """One Region per split of a work, with the cuts of pre-training (corpus.val_start)."""
    held_out = val_start(doc.text, 0.1)
    test = held_out + val_start(doc.text[held_out:], 0.5)  # the midpoint of the last 10%
    bounds = {"train": (0, held_out), "validation": (held_out, test), "test": (test, len(doc.text))}
    texts = doc.text.split("\n")
    offsets = list(accumulate((len(text) + 1 for text in texts), initial=0))
    start = next((i for i, text in enumerate(texts) if HEADING.match(text)), -1) + 1
    lines = [(offsets[i], Line(i + 1, texts[i], speech))
             for i, speech in enumerate(speech_flags(texts)) if i >= start and texts[i].strip()]
    regions = {}
    for split, (lo, hi) in bounds.items():
        # a line is kept only where it lies wholly inside the region; val_start cuts at line
        # starts, so this drops nothing except where it had to cut mid-line (no newline left)
        kept = [line for offset, line in lines if lo <= offset <= hi - len(line.text)]
        least = min(MIN_CHARS, sum(len(line.text) for line in kept) // 4)
        regions[split] = Region(doc.name, doc.kind, kept, least)
    return regions


def speech_flags(texts) -> list[bool]:
    """For each line: is it speech, rather than a speaker tag ("Ham."), stage direction,
    heading, or a line under MIN_ANSWER_CHARS? A [direction] may span lines; I close one left
    open at the next blank line, as a few in the corpus are never closed."""
    flags, inside = [], False
    for text in texts:
        text = text.strip()
        bracketed = "[" in text or "]" in text
        flags.append(not (inside or bracketed) and is_speech(text))
        inside = bool(text) and (text.rfind("[") > text.rfind("]") if bracketed else inside)
    return flags


def is_speech(text) -> bool:
    if len(text) < MIN_ANSWER_CHARS or not any(c.islower() for c in text) or HEADING.match(text):
        return False
    words = text.rstrip(".:").split()
    return not (text.endswith(".") and all(w[0].isupper() or w in CONNECTORS for w in words))


def passages(region) -> list[Passage]:
    """The region cut into passages, top to bottom, by the rule of the module docstring."""
    found, first, size, least = [], 0, -1, region.min_chars  # size -1: an empty passage
    for i, line in enumerate(region.lines):
        if len(line.text) > MAX_CHARS:
            first, size = i + 1, -1
            continue
        if size + 1 + len(line.text) > MAX_CHARS:
            first, size = i, -1  # the short passage cannot grow without passing MAX_CHARS
        size += 1 + len(line.text)
        if size >= least:
            found.append(Passage(region, len(found), first, i, join(region, first, i)))
            first, size = i + 1, -1
    return found


def passage_before(region, j):
    """The passage that ends on the line before line j, taken backwards; None if none fits."""
    first, size, least = j, -1, region.min_chars
    while size < least:
        if first == 0 or size + 1 + len(region.lines[first - 1].text) > MAX_CHARS:
            return None
        first -= 1
        size += 1 + len(region.lines[first].text)
    return Passage(region, -1, first, j - 1, join(region, first, j - 1))


def join(region, first, last):
    return "\n".join(line.text for line in region.lines[first : last + 1])


def adjacent(a, b):
    """True when passage b starts on the non-blank line right after passage a ends."""
    return a.region is b.region and b.first == a.last + 1


# ---------------------------------------------------------------------------------------------
# Drawing at random


def draw(pool, k, rng, ok=None):
    """Up to k different items of `pool`, at random, that pass ok(item, chosen so far), if given.

    A few plain random picks come first, since in a large pool nearly every item passes; only
    when they are not enough do I go through the whole pool in a random order."""
    chosen, seen = [], set()
    for stage in (lambda: rng.integers(len(pool), size=4 * k), lambda: rng.permutation(len(pool))):
        for i in stage() if pool else ():
            if len(chosen) == k or len(seen) == len(pool):
                return chosen
            if i not in seen and (ok is None or ok(pool[i], chosen)):
                chosen.append(pool[i])
            seen.add(i)
    return chosen


def own_then_any(own, everything, k, rng, ok):
    """k items from `own` (one work's region), or filled up from `everything`; [] if too few."""
    chosen = draw(own, k, rng, ok)
    if len(chosen) < k:
        chosen += draw(everything, k - len(chosen), rng, lambda item, more: ok(item, chosen + more))
    return chosen if len(chosen) == k else []


def collect(candidates, k, make, rng):
    """Examples made from the first k candidates, in random order, that make() can use; it
    returns [] for one it cannot. The generator stops calling make() once it has k."""
    made = (make(candidates[i]) for i in rng.permutation(len(candidates)))
    return [example for examples in islice(filter(None, made), k) for example in examples]


# ---------------------------------------------------------------------------------------------
# The four tasks: each builds one split's examples from that split's regions


def genre_examples(regions, cap, rng):
    """Passages of each kind of play, as many of each as the rarest kind has."""
    by_kind = [[p for r in regions if r.kind == kind for p in passages(r)] for kind in PLAY_KINDS]
    n = min(cap // len(PLAY_KINDS), *map(len, by_kind))
    return [Example((p.text,), label, p.source)
            for label, pool in enumerate(by_kind) for p in draw(pool, n, rng)]


def word_order_examples(regions, cap, rng):
    """Each premise twice: with the passage that follows it, and with that passage shuffled."""
    _, everything = passages_of(regions)
    pairs = [(a, b) for a, b in zip(everything, everything[1:], strict=False) if adjacent(a, b)]

    def make(pair):
        a, b = pair
        shuffled = shuffle_words(b.text, rng)
        if shuffled == b.text:  # no line long enough to change
            return []
        return twice(a, b.text, shuffled)

    return collect(pairs, cap // 2, make, rng)


def shuffle_words(text, rng):
    """Each line's words in a random order that changes the line, where one can."""
    lines = []
    for line in text.split("\n"):
        words = line.split(" ")
        for _ in range(10):  # a few tries at an order that differs: "so so" has none
            shuffled = [words[i] for i in rng.permutation(len(words))]
            if shuffled != words:
                break
        lines.append(" ".join(shuffled))
    return "\n".join(lines)


def same_work_examples(regions, cap, rng):
    """Each anchor twice: with a non-adjacent passage of its work, and with another work's."""
    per_region, everything = passages_of(regions)

    def make(a):
        same = draw(per_region[id(a.region)], 1, rng, lambda p, _: abs(p.index - a.index) >= 2)
        other = draw(everything, 1, rng, lambda p, _: p.region.work != a.region.work)
        return twice(a, same[0].text, other[0].text) if same and other else []

    return collect(everything, cap // 2, make, rng)


def passages_of(regions):
    """({id(region): its passages}, all of them in order) for one split."""
    per_region = {id(r): passages(r) for r in regions}
    return per_region, [p for ps in per_region.values() for p in ps]


def twice(a, yes_text, no_text):
    """Passage a paired with a partner text of each label: label 1 first, then label 0."""
    return [Example((a.text, yes_text), 1, a.source), Example((a.text, no_text), 0, a.source)]


def next_line_examples(regions, cap, rng):
    """A context and 4 lines of speech: the one that follows it, and 3 from around it."""
    speech = {id(r): [(r, j) for j, line in enumerate(r.lines) if line.speech] for r in regions}
    everything = [item for items in speech.values() for item in items]

    def make(item):
        r, j = item
        context = passage_before(r, j)

        def fits(other, chosen):  # outside the context and answer, and a text not yet taken
            region, k = other
            taken = {x.lines[m].text.strip() for x, m in (item, *chosen)}
            return (region is not r or not context.first <= k <= j) and (
                region.lines[k].text.strip() not in taken)

        picked = own_then_any(speech[id(r)], everything, 3, rng, fits) if context else []
        if not picked:
            return []
        answer = int(rng.integers(4))  # the true line's position: A, B, C or D
        answers = [region.lines[k].text for region, k in picked]
        answers.insert(answer, r.lines[j].text)
        return [Example((context.text, *answers), answer, context.source)]

    return collect(everything, cap, make, rng)


BUILDERS = {"genre": genre_examples, "word-order": word_order_examples,
            "same-work": same_work_examples, "next-line": next_line_examples}


# ---------------------------------------------------------------------------------------------
# The public entry points


def make_shakespeare_task(name, docs, seed=0, max_examples=None) -> TaskData:
    """Build task `name` from corpus Documents; the same (docs, seed) give the same examples.

    max_examples: {split: cap} to change DEFAULT_MAX_EXAMPLES (train 2000, validation 400,
    test 800) for some splits; a split holds fewer when the corpus gives fewer.
    """
    if name not in SHAKESPEARE_TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(SHAKESPEARE_TASKS)}")
    caps = {**DEFAULT_MAX_EXAMPLES, **(max_examples or {})}
    if set(caps) != set(SPLITS):
        raise ValueError(f"max_examples has keys {sorted(caps)}; use only {', '.join(SPLITS)}")
    if name == "genre":
        docs = [doc for doc in docs if doc.kind in PLAY_KINDS]
        if not docs:
            raise ValueError(f"genre needs works of kind {', '.join(PLAY_KINDS)}, and no document "
                             "has one: put a metadata.csv with a kind column beside the texts")
    regions = [split_regions(doc) for doc in docs]
    splits = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k])
        examples = BUILDERS[name]([r[split] for r in regions], caps[split], rng)
        if not examples:
            raise ValueError(f"task {name}: the {split} split has no example: the corpus is too "
                             f"small ({len(docs)} usable works); give more or longer texts")
        splits[split] = [examples[i] for i in rng.permutation(len(examples))]
    return TaskData(SHAKESPEARE_TASKS[name], splits)


def describe(task_data) -> str:
    """A few lines for the CLI: the task, then examples per split and per label."""
    spec = task_data.spec
    lines = [f"{spec.name} ({spec.kind}, {spec.metric}): {spec.description}"]
    for split, examples in task_data.splits.items():
        counts = Counter(example.label for example in examples)
        per_label = ", ".join(f"{label} {counts[i]}" for i, label in enumerate(spec.labels))
        lines.append(f"  {split:<10} {len(examples):5d} examples: {per_label}")
    return "\n".join(lines)
