"""Property-based tests: round trips on arbitrary unicode, and fast trainer == naive trainer."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.tokenizer.pretokenization import words_gpt1
from minigpt1.tokenizer.trainers import train_fast, train_naive

CORPUS = ["The quick brown fox, 3 times: naïve café!\n", "中文 🤗 Ελληνικά \t tabs  spaces"]
# Every code point Python can hold, lone surrogates included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)


@pytest.fixture(scope="module")
def bytes_tok():
    return BPETokenizer.train(CORPUS, 330, "bytes", progress=False)


@pytest.fixture(scope="module")
def gpt1_tok():
    return BPETokenizer.train(CORPUS, 120, "gpt1", progress=False)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_bytes_mode_round_trips_arbitrary_unicode(bytes_tok, text):
    ids = bytes_tok.encode(text)
    assert all(0 <= i < bytes_tok.vocab_size for i in ids)
    assert bytes_tok.decode(ids) == text


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_gpt1_mode_never_raises_and_keeps_the_word_count(gpt1_tok, text):
    ids = gpt1_tok.encode(text)
    # Every word gives at least one token, and at most one of them ends in </w>: its last,
    # unless the word's last character is unknown and became <unk>.
    ends = sum(gpt1_tok.id_to_token(i).endswith("</w>") for i in ids)
    assert ends <= len(words_gpt1(text)) <= len(ids)
    gpt1_tok.decode(ids)


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_gpt1_mode_decodes_to_the_normalised_text(text):
    words = words_gpt1(text)
    if words:  # trained on the text itself, the vocabulary has all its characters
        tok = BPETokenizer.train([text], 200, "gpt1", progress=False)  # base <= 1 + 2 * 60
        assert tok.decode(tok.encode(text)) == " ".join(words)


# Small alphabets make ties and runs like (0, 0, 0) common: the cases where trainers differ.
WORDS = st.dictionaries(
    keys=st.lists(st.integers(0, 3), min_size=1, max_size=10).map(tuple),
    values=st.integers(1, 5),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(WORDS, st.integers(0, 40))
def test_fast_trainer_learns_exactly_the_naive_merges(words, num_merges):
    assert train_fast(words, num_merges, first_id=4) == train_naive(words, num_merges, first_id=4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text("ab c\n", max_size=30), min_size=1, max_size=6),
    st.sampled_from(["gpt1", "bytes"]),
)
def test_fast_and_naive_tokenizers_give_the_same_ids(texts, mode):
    assume(any(text.strip() for text in texts))  # else the corpus is empty
    vocab_size = 30 if mode == "gpt1" else 290
    fast = BPETokenizer.train(texts, vocab_size, mode, trainer="fast", progress=False)
    naive = BPETokenizer.train(texts, vocab_size, mode, trainer="naive", progress=False)
    assert fast.merges == naive.merges
    assert [fast.encode(t) for t in texts] == [naive.encode(t) for t in texts]
