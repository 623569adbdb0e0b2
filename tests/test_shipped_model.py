"""The pre-trained model the project ships, data/pretrained/shakespeare-6x256/: its weights are
the ones its card names, it loads here and in transformers, and it knows Shakespeare."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import GPT, from_pretrained
from minigpt1.jobs.run_folder import load_model
from minigpt1.model.generate import generate
from tests.conftest import require

FOLDER = Path(__file__).resolve().parents[1] / "data" / "pretrained" / "shakespeare-6x256"
# Sonnet 18 (public domain): text the model read in pre-training, in the corpus's layout
SONNET = """  Shall I compare thee to a summer's day?
  Thou art more lovely and more temperate:
  Rough winds do shake the darling buds of May,
  And summer's lease hath all too short a date:
  Sometime too hot the eye of heaven shines,
  And often is his gold complexion dimm'd;
  And every fair from fair sometime declines,
  By chance or nature's changing course untrimm'd;
  But thy eternal summer shall not fade
  Nor lose possession of that fair thou owest;
  Nor shall Death brag thou wander'st in his shade,
  When in eternal lines to time thou growest:
  So long as men can breathe or eyes can see,
  So long lives this, and this gives life to thee.
"""


@pytest.fixture(scope="module")
def card():
    return json.loads((FOLDER / "card.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped():
    return load_model(FOLDER)


def bits_per_char(model, tokenizer, text):
    ids = np.array([tokenizer.encode(text)])  # (1, T + 1)
    return model.lm_loss(ids) * (ids.shape[1] - 1) / np.log(2) / len(text)


def test_the_weights_are_the_ones_the_card_names(card):
    weights = (FOLDER / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == card["weights_sha256"]
    assert len(weights) <= 25 * 2**20
    config = json.loads((FOLDER / "config.json").read_text(encoding="utf-8"))
    for ours, theirs in (("n_layer", "n_layer"), ("n_embd", "n_embd"), ("n_head", "n_head"),
                         ("n_ctx", "n_positions"), ("vocab_size", "vocab_size")):
        assert card["config"][ours] == config[theirs]
    assert card["held_out"]["bits_per_char"] <= 1.70  # the target, measured by make.py


def test_it_loads_and_knows_shakespeare(shipped):
    model, tokenizer = shipped
    assert (model.cfg.n_layer, model.cfg.n_embd, model.cfg.vocab_size) == (6, 256, 2048)
    plain = from_pretrained(FOLDER)
    ids = np.array([tokenizer.encode(SONNET)[:64]])
    np.testing.assert_array_equal(plain.forward(ids), model.forward(ids))
    trained = bits_per_char(model, tokenizer, SONNET)
    untrained = bits_per_char(GPT(model.cfg, seed=0), tokenizer, SONNET)
    assert trained < 2.0 and untrained > 3.5, (trained, untrained)


def test_it_writes_a_play(shipped):
    model, tokenizer = shipped
    prompt = tokenizer.encode("HAMLET.\n")
    text = tokenizer.decode(generate(model, [prompt], 150, temperature=0.8, seed=0)[0].tolist())
    tags = re.findall(r"(?m)^[A-Z][A-Z ]+\.$", text)  # speakers, as the corpus writes them
    assert len(tags) >= 2, text


def test_transformers_reads_the_same_model(shipped):
    hf, torch = require("transformers"), require("torch")
    model, tokenizer = shipped
    theirs = hf.AutoModelForCausalLM.from_pretrained(FOLDER).eval()
    their_tokenizer = hf.AutoTokenizer.from_pretrained(FOLDER)
    ids = tokenizer.encode(SONNET)
    assert their_tokenizer(SONNET)["input_ids"] == ids
    with torch.no_grad():
        logits = theirs(torch.tensor([ids[:64]])).logits.numpy()
    np.testing.assert_allclose(model.forward(np.array([ids[:64]])), logits, atol=1e-4)
