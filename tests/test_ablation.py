"""The ablation command end to end (on the sample corpus), and the zero-shot heuristic."""

import json

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.cli import main
from minigpt1.corpus.text_folders import SAMPLE_DIR, load_text_dir, split_documents
from minigpt1.finetuning.transformations import Example
from minigpt1.jobs.ablation import VARIANTS, markdown_table, zero_shot_multiple_choice
from minigpt1.tokenizer.bpe import BPETokenizer


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """An untrained small GPT with a tokenizer of the sample corpus, as a model folder."""
    folder = tmp_path_factory.mktemp("model")
    train, _ = split_documents(load_text_dir(SAMPLE_DIR))
    tokenizer = BPETokenizer.train(train, vocab_size=320, mode="bytes", progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=128, n_embd=32, n_layer=1, n_head=2)
    GPT(cfg, seed=0).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


def test_zero_shot_picks_the_most_probable_answer(sample_model):
    from minigpt1.jobs.run_folder import load_model

    model, tokenizer = load_model(sample_model)
    example = Example(("The king", " is dead", " sat upon", " the sea and the wind"), 0)
    context = tokenizer.encode("The king\n")

    def mean_logp(answer):  # by hand: log-softmax of the logits, read at the answer's tokens
        ids = context + tokenizer.encode(answer)
        logits = model.forward(np.array([ids[:-1]]))[0].astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        start = len(context) - 1
        return np.mean([logp[start + i, t] for i, t in enumerate(ids[len(context) :])])

    best = int(np.argmax([mean_logp(a) for a in example.segments[1:]]))
    for label in range(3):
        expected = float(label == best)
        relabelled = [Example(example.segments, label)]
        assert zero_shot_multiple_choice(model, tokenizer, relabelled, progress=False) == expected


def test_ablation_command(sample_model, tmp_path, capsys):
    out = tmp_path / "ablation"
    code = main(["ablation", "--checkpoint", str(sample_model), "--text-dir", str(SAMPLE_DIR),
                 "--out", str(out), "--epochs", "1", "--batch-size", "16", "--lr", "1e-3",
                 "--max-train-examples", "48"])
    assert code == 0
    table = (out / "ablation.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} |" in table
    assert "| chance | 33.3 | 50.0 | 50.0 | 25.0 | 39.6 | |" in table
    saved = json.loads((out / "ablation.json").read_text())
    for scores in saved["test"].values():
        assert set(scores) == {"genre", "continuation", "same-work", "next-line"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert 0.0 <= saved["zero_shot_next_line"] <= 1.0
    assert (out / "ablation.png").stat().st_size > 10_000
    # the variants really differ: no pre-training transfers nothing, L2 logs no L1
    l2_only = (out / "pre-training-L2" / "genre" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line)["l1"] is None for line in l2_only)
    assert json.loads(l2_only[-1])["step"] == 48 // 16  # --max-train-examples 48, batch 16
    assert main(["ablation", "--checkpoint", str(sample_model), "--out", str(out)]) == 1
    assert "already holds an ablation" in capsys.readouterr().err


def test_markdown_table_average():
    results = {v: {"genre": 0.5, "continuation": 0.6, "same-work": 0.7, "next-line": 0.8}
               for v in VARIANTS}
    table = markdown_table(results, zero_shot=0.3)
    assert "| pre-training + L3 | 50.0 | 60.0 | 70.0 | 80.0 | 65.0 | 74.7 |" in table
    assert "30.0%" in table
