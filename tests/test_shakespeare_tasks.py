"""The four Shakespeare fine-tuning tasks: splits that never share a line, balanced labels,
and examples that really are what their labels say, checked against the source texts.

Two corpora: the sample corpus (real layout, tiny works: its held-out regions are about 150
characters, so some negatives and distractors come from other works there), and a made-up one
whose every line of speech is unique and names its work, so provenance is exact."""

import re
from collections import Counter

import numpy as np
import pytest

from minigpt1.corpus.text_folders import SAMPLE_DIR, Document, load_text_dir, val_start
from minigpt1.finetuning.shakespeare_tasks import (
    MAX_CHARS,
    MIN_CHARS,
    SHAKESPEARE_TASKS,
    SPLITS,
    describe,
    make_shakespeare_task,
    passages,
    shuffle_words,
    split_regions,
)

TASKS = list(SHAKESPEARE_TASKS)
WORKS = {"aldwick": "comedy", "brenton": "history", "carrow": "tragedy", "dunmere": "comedy"}


def play(name, kind, speeches=120):
    """A play with a title block, a cast list, tags, stage directions and unique speech."""
    lines = [f"THE PLAY OF {name.upper()}", "", "PERSONS REPRESENTED.", "", "Alpha, a king.", "",
             "ACT I.", ""]
    for i in range(speeches):
        lines += ["ALPHA." if i % 2 else "BETA.", f"This is the speech number {i} of {name},",
                  f"and {name} goes on with the speech {i} here.", ""]
        if i % 5 == 4:
            lines += [f"[Exit the servant of {name}, {i}.]", ""]
    return Document(name, "\n".join(lines), kind)


@pytest.fixture(scope="module")
def sample():
    return load_text_dir(SAMPLE_DIR)


@pytest.fixture(scope="module")
def made_up():
    return [play(name, kind) for name, kind in WORKS.items()]


@pytest.fixture(scope="module")
def built(sample, made_up):
    """{(corpus, task): TaskData}, built once: the whole sample corpus takes ~0.05 s."""
    return {(corpus, name): make_shakespeare_task(name, docs)
            for corpus, docs in (("sample", sample), ("made_up", made_up)) for name in TASKS}


def lines_from(doc, number):
    """The non-blank lines of `doc` from its 1-based line `number` on."""
    return [line for line in doc.text.split("\n")[number - 1 :] if line.strip()]


def at_source(docs, example):
    """The document an example names in its source "slug:line N", and the line N."""
    slug, number = re.fullmatch(r"(\w+):line (\d+)", example.source).groups()
    return next(doc for doc in docs if doc.name == slug), int(number)


def follows(docs, example, first, second):
    """Does segment `second` start on the non-blank line right after segment `first` ends?"""
    doc, number = at_source(docs, example)
    head, tail = example.segments[first].split("\n"), example.segments[second].split("\n")
    after = lines_from(doc, number)
    assert after[: len(head)] == head, f"{example.source} does not start the first segment"
    return after[len(head) : len(head) + len(tail)] == tail


def passage_texts(example, spec):
    """The segments that are passages: all but the answers of a multiple-choice example."""
    return example.segments[:1] if spec.kind == "multiple_choice" else example.segments


def where_lines_are(docs):
    """{line text: the splits whose regions hold it}, from corpus.val_start as pre-training."""
    where = {}
    for doc in docs:
        held_out = val_start(doc.text, 0.1)
        test = held_out + val_start(doc.text[held_out:], 0.5)
        parts = zip(SPLITS, (doc.text[:held_out], doc.text[held_out:test], doc.text[test:]),
                    strict=True)
        for split, text in parts:
            for line in text.split("\n"):
                where.setdefault(line, set()).add(split)
    return where


# ---------------------------------------------------------------------------------------------
# Shape of the data


@pytest.mark.parametrize("name", TASKS)
def test_every_split_holds_examples_of_the_right_shape(built, name):
    data = built["sample", name]
    assert data.spec is SHAKESPEARE_TASKS[name] and list(data.splits) == list(SPLITS)
    for examples in data.splits.values():
        assert examples, f"{name}: a split of the sample corpus is empty"
        assert {len(e.segments) for e in examples} == {data.spec.n_segments}
        assert all(0 <= e.label < len(data.spec.labels) for e in examples)
    assert data.spec.n_segments == {"genre": 1, "word-order": 2, "same-work": 2,
                                    "next-line": 5}[name]


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_examples_other_seed_others(sample, built, name):
    assert make_shakespeare_task(name, sample, seed=0) == built["sample", name]
    assert make_shakespeare_task(name, sample, seed=1) != built["sample", name]


@pytest.mark.parametrize("corpus", ["sample", "made_up"])
@pytest.mark.parametrize("name", TASKS)
def test_passages_are_whole_lines_within_the_length_rule(built, corpus, name):
    data = built[corpus, name]
    for split, examples in data.splits.items():
        for text in (t for e in examples for t in passage_texts(e, data.spec)):
            assert len(text) <= MAX_CHARS and "\n\n" not in text
            # only the tiny held-out regions of the sample corpus may hold shorter passages
            if corpus == "made_up" or split == "train":
                assert len(text) >= MIN_CHARS, (split, text)
            assert "PERSONS REPRESENTED." not in text and "Alpha, a king." not in text


def test_a_line_too_long_for_any_passage_is_skipped_and_breaks_adjacency():
    long_line = "and so on, " * 17  # 187 characters
    doc = play("aldwick", "comedy", speeches=40)
    doc = Document(doc.name, doc.text.replace("speech 9 here.", "speech 9 here.\n" + long_line))
    region = split_regions(doc)["train"]
    skipped = next(i for i, line in enumerate(region.lines) if line.text == long_line)
    found = passages(region)
    assert not any(p.first <= skipped <= p.last for p in found)
    after = next(i for i, p in enumerate(found) if p.first > skipped)
    assert found[after].first > found[after - 1].last + 1  # so never a "continues" pair


# ---------------------------------------------------------------------------------------------
# No line in two splits


def corpus_segments(name, example):
    """The segments of an example that hold corpus lines: a shuffled word-order passage holds
    its twin's lines in another order (that test is below)."""
    shuffled = name == "word-order" and example.label == 0
    return example.segments[:1] if shuffled else example.segments


@pytest.mark.parametrize("corpus", ["sample", "made_up"])
@pytest.mark.parametrize("name", TASKS)
def test_every_line_comes_from_its_own_split_and_no_other(sample, made_up, built, corpus, name):
    where = where_lines_are(sample if corpus == "sample" else made_up)
    used = {split: {line for e in examples for text in corpus_segments(name, e)
                    for line in text.split("\n")}
            for split, examples in built[corpus, name].splits.items()}
    for split, lines in used.items():
        assert all(split in where[line] for line in lines), f"{split} uses another split's line"
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        # a line text found in two regions (a speaker tag, "[Exeunt.]") may be in both
        assert all(len(where[line]) > 1 for line in used[a] & used[b]), f"{a} and {b} share"


# ---------------------------------------------------------------------------------------------
# Labels: balanced, and true


def label_counts(examples):
    return Counter(e.label for e in examples)


@pytest.mark.parametrize("corpus", ["sample", "made_up"])
def test_genre_is_balanced_and_names_the_kind_of_the_play(sample, made_up, built, corpus):
    docs = sample if corpus == "sample" else made_up
    for examples in built[corpus, "genre"].splits.values():
        assert sorted(label_counts(examples).values()) == [len(examples) // 3] * 3
        for e in examples:
            assert at_source(docs, e)[0].kind == ("comedy", "history", "tragedy")[e.label]


@pytest.mark.parametrize("name", ["word-order", "same-work"])
def test_pairs_are_half_and_half(built, name):
    for examples in built["sample", name].splits.values():
        counts = label_counts(examples)
        assert abs(counts[0] - counts[1]) <= 1 and set(counts) == {0, 1}


def test_word_order_pairs_a_passage_with_the_next_one_as_written_or_shuffled(sample, built):
    for examples in built["sample", "word-order"].splits.values():
        as_written = {e.segments for e in examples if e.label == 1}
        for e in examples:
            assert follows(sample, e, 0, 1) == (e.label == 1), e
            if e.label == 1:
                continue
            # the same lines, each with the same words
            original = next(b for a, b in as_written if a == e.segments[0])
            assert e.segments[1] != original
            for line, shuffled in zip(original.split("\n"), e.segments[1].split("\n"),
                                      strict=True):
                words, moved = line.split(" "), shuffled.split(" ")
                assert sorted(words) == sorted(moved), (line, shuffled)


def test_shuffle_words_changes_every_line_that_can_change():
    rng = np.random.default_rng(0)
    text = "Now is the winter of our discontent\nAy me\nROMEO.\nso so"
    for _ in range(20):
        lines = shuffle_words(text, rng).split("\n")
        assert lines[0] != "Now is the winter of our discontent"
        assert sorted(lines[0].split(" ")) == sorted("Now is the winter of our discontent".split())
        assert lines[1:] == ["me Ay", "ROMEO.", "so so"]  # one word, or two alike, cannot move


def test_same_work_labels_are_true(sample, built):
    for corpus in ("sample", "made_up"):
        for e in (e for examples in built[corpus, "same-work"].splits.values() for e in examples):
            if corpus == "made_up":
                assert (e.source.split(":")[0] in e.segments[1]) == (e.label == 1)
                continue
            doc = at_source(sample, e)[0]
            in_doc = e.segments[1] in "\n".join(lines_from(doc, 1))
            assert in_doc == (e.label == 1) and not follows(sample, e, 0, 1), e


def test_next_line_answer_is_the_line_after_the_context(sample, built):
    for split, examples in built["sample", "next-line"].splits.items():
        for e in examples:
            doc, number = at_source(sample, e)
            context = e.segments[0].split("\n")
            assert lines_from(doc, number)[len(context)] == e.segments[1 + e.label]
            answers = [a.strip() for a in e.segments[1:]]
            assert len(set(answers)) == 4, "the four answers must differ"
            for answer in answers:  # lines of speech: no tag, direction or short line
                assert len(answer) >= 15 and not re.search(r"[\[\]]", answer), answer
                assert not re.fullmatch(r"[A-Z][A-Z ]*\.", answer), answer
        if split == "train":
            assert set(label_counts(examples)) == {0, 1, 2, 3}


# ---------------------------------------------------------------------------------------------
# Caps, description, errors


def test_max_examples_caps_a_split_and_keeps_the_balance(sample):
    data = make_shakespeare_task("genre", sample, max_examples={"train": 10})
    assert len(data.splits["train"]) == 9 and len(set(label_counts(data.splits["train"]))) == 3
    with pytest.raises(ValueError, match="use only train, validation, test"):
        make_shakespeare_task("genre", sample, max_examples={"dev": 10})


def test_describe_counts_examples_per_split_and_label(built):
    data = built["sample", "word-order"]
    words = " ".join(describe(data).split())  # the column widths do not matter here
    n = len(data.splits["test"])
    assert words.startswith("word-order (entailment, accuracy)")
    assert f"test {n} examples: shuffled {n // 2}, as written {n // 2}" in words


def test_unknown_task_names_the_known_ones(sample):
    with pytest.raises(ValueError, match="genre, word-order, same-work, next-line"):
        make_shakespeare_task("sentiment", sample)


def test_genre_without_kinds_says_where_kinds_come_from(made_up):
    no_kinds = [Document(doc.name, doc.text) for doc in made_up]
    with pytest.raises(ValueError, match="metadata.csv"):
        make_shakespeare_task("genre", no_kinds)
    assert make_shakespeare_task("same-work", no_kinds).splits["test"]  # kinds not needed


@pytest.mark.parametrize("name", TASKS)
def test_a_corpus_too_small_is_refused(name):
    tiny = [play("aldwick", "comedy", speeches=12), play("brenton", "history", speeches=12)]
    with pytest.raises(ValueError, match=rf"task {name}: the \w+ split has no example.*too small"):
        make_shakespeare_task(name, tiny)
