"""Differential tests: our tokenizer against HuggingFace transformers and tokenizers.

transformers' OpenAIGPTTokenizer (gpt1 mode) and GPT2Tokenizer (bytes mode) read the files we
write, and must produce our ids; tokenizers' BertNormalizer + BertPreTokenizer must cut
arbitrary text into our words. In CI these libraries are required (tests/conftest.py).
"""

import json
import unicodedata

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt1.tokenizer.bpe import GPT1_SPECIAL_TOKENS, BPETokenizer
from minigpt1.tokenizer.pretokenization import normalize_gpt1, split_gpt1
from tests.conftest import require

CORPUS = [
    "It was the best of times, it was the worst of times; it was the age of wisdom...\n",
    "Naïve café owners in Zürich paid 3.50 francs (or 4$?) for crème brûlée, in 1999!\n",
    "\"Don't,\" she said -- 'it isn't 12:30 yet' -- e-mail me at a_b@c.d #42 ~/x [y] {z}\n",
    "ΑΘΗΝΑ Αθήνα, Москва, 東京 and 北京: ünïcödé ÀÉÎÕÜ, the end.\n\n\tTabs\tand\r\nlines\n",
]
MIXED = (
    "Hello, World! It's 3.14159 -- or is it 22/7? Café NAÏVE résumé; (brackets) [more] {most}\n"
    "Tabs\there, \"quotes\", 'single', e-mail: x@y.z #hashtag 100% $5 & more...\n\n"
    "Αθήνα Москва 東京 ☃ 🤗 don't won't can't Ünïcödé"
)
# tokenizers classifies characters with Unicode 8.0 tables (see
# minigpt1/tokenizer/pretokenization.py). Unicode 3.2, the only older table Python ships,
# holds none of the later additions; these four characters changed category after Unicode 8.0
# and are the known differences inside it.
RECATEGORISED = {"\u166d", "\u1734", "\u1885", "\u1886"}
UNASSIGNED = regex.compile(r"\p{Cn}")


def stable(c: str) -> bool:
    """True for characters both Unicode versions agree on (or that neither assigns)."""
    if c in RECATEGORISED:
        return False
    return unicodedata.ucd_3_2_0.category(c) != "Cn" or bool(UNASSIGNED.match(c))


STABLE_TEXT = st.text(st.characters(exclude_categories=["Cs"]).filter(stable), max_size=40)


@pytest.fixture(scope="module")
def gpt1_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpt1")
    tok = BPETokenizer.train(CORPUS, 300, "gpt1", progress=False)
    tok.add_special_tokens(GPT1_SPECIAL_TOKENS)
    tok.save(directory)
    return directory


@pytest.fixture(scope="module")
def ours_gpt1(gpt1_dir):
    return BPETokenizer.load(gpt1_dir)


@pytest.fixture(scope="module")
def hf_gpt1(gpt1_dir):
    transformers = require("transformers")
    return transformers.OpenAIGPTTokenizer.from_pretrained(gpt1_dir)


def hf_ids(hf, text):
    return hf(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", [MIXED, *CORPUS, "", "   ", "a", "☃"])
def test_openai_gpt_tokenizer_reads_our_files_and_agrees(ours_gpt1, hf_gpt1, text):
    ids = ours_gpt1.encode(text)
    assert hf_ids(hf_gpt1, text) == ids
    assert hf_gpt1.decode(ids) == ours_gpt1.decode(ids)


def test_the_mixed_text_really_mixes(ours_gpt1):
    # Guards the test above against a vocabulary that would make it trivial.
    pieces = ours_gpt1.tokens(MIXED)
    assert "<unk>" in pieces and any(len(p) > 5 for p in pieces)
    assert {"'</w>", ",</w>", "3</w>", "cafe</w>"} <= set(pieces)


def test_gpt2_tokenizer_reads_our_bytes_files_and_agrees(tmp_path):
    transformers = require("transformers")
    BPETokenizer.train(CORPUS, 500, "bytes", progress=False).save(tmp_path)
    ours, hf = BPETokenizer.load(tmp_path), transformers.GPT2Tokenizer.from_pretrained(tmp_path)
    for text in [MIXED, *CORPUS]:
        assert hf_ids(hf, text) == ours.encode(text)
        assert hf.decode(ours.encode(text)) == text


def test_both_read_openai_gpt_files_alike(tmp_path):
    # The layout of HuggingFace's openai-gpt files (<unk> first, "\n</w>" last, no
    # minigpt1_bpe.json), made small; the ids are shuffled to prove nobody renumbers them.
    transformers = require("transformers")
    tokens = ["<unk>", "l", "o", "w", "e", "r", "l</w>", "o</w>", "w</w>", "e</w>", "r</w>",
              "lo", "low</w>", "er</w>", "low", "lower</w>", "\n</w>"]
    ids = [0, *range(len(tokens) - 1, 0, -1)]
    (tmp_path / "vocab.json").write_text(json.dumps(dict(zip(tokens, ids, strict=True))))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\nlo w\n"
                                         "low er</w>\n")
    ours = BPETokenizer.load(tmp_path, mode="gpt1")
    hf = transformers.OpenAIGPTTokenizer.from_pretrained(tmp_path)
    for text in ["low lower lowest LOWER", "owl wore; row", "lo w\nlo"]:
        assert hf_ids(hf, text) == ours.encode(text)
    id_of = dict(zip(tokens, ids, strict=True))
    assert ours.encode("lower low") == [id_of["lower</w>"], id_of["low</w>"]]


@settings(max_examples=300, deadline=None)
@given(STABLE_TEXT)
def test_normalisation_and_words_match_tokenizers(text):
    tokenizers = require("tokenizers")
    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    expected = normalizer.normalize_str(text)
    assert normalize_gpt1(text) == expected
    assert split_gpt1(expected) == [w for w, _ in pre_tokenizer.pre_tokenize_str(expected)]


@settings(max_examples=150, deadline=None)
@given(STABLE_TEXT)
def test_ids_match_openai_gpt_tokenizer_on_arbitrary_text(ours_gpt1, hf_gpt1, text):
    assert ours_gpt1.encode(text) == hf_ids(hf_gpt1, text)
