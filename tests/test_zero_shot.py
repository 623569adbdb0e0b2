"""Zero-shot heuristics on a hand-made language model whose probabilities are set by hand, so
each right answer is known; then the heuristics on a real GPT, and the job that scores the
snapshots of a pre-training run (Figure 2 right)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.corpus.text_folders import SAMPLE_DIR, load_text_dir, split_documents
from minigpt1.finetuning import zero_shot
from minigpt1.finetuning.shakespeare_tasks import SHAKESPEARE_TASKS
from minigpt1.finetuning.transformations import Example, TaskSpec
from minigpt1.finetuning.zero_shot import (
    above_median,
    continuation_log_probs,
    following_scores,
    label_word_scores,
    multiple_choice_scores,
    pmi_scores,
    similarity_scores,
    zero_shot_accuracy,
)
from minigpt1.tokenizer.bpe import BPETokenizer

V = 8  # tokens 0..7: 0 a newline, 1 a prompt, 2..4 words, 5 and 6 triggers, 7 filler
TRIGGER_3, TRIGGER_2 = 5, 6


def probabilities(**by_token):
    """A row of next-token probabilities: the given ones, the rest shared out evenly."""
    row = np.full(V, (1 - sum(by_token.values())) / (V - len(by_token)))
    for name, p in by_token.items():
        row[int(name[1:])] = p
    return row


class TinyLM:
    """A language model by hand: after token a, token b comes with probability P[a, b]; a
    trigger seen anywhere before multiplies its word's weight (5 boosts 3, 6 boosts 2) by
    `boost`, before the row is normalised again."""

    def __init__(self, boost=3.0, n_ctx=16):
        self.cfg = SimpleNamespace(n_ctx=n_ctx, vocab_size=V)
        self.P = np.stack([probabilities(t2=0.5, t3=0.3), probabilities(t2=0.7, t3=0.1),
                           *[probabilities(t7=0.5)] * (V - 2)])
        self.boost = boost

    def forward(self, ids):  # (B, T) -> logits (B, T, V): log-weights, not normalised
        logits = np.log(self.P[ids])
        for trigger, word in ((TRIGGER_3, 3), (TRIGGER_2, 2)):
            seen = np.cumsum(ids == trigger, axis=1) > 0  # (B, T)
            logits[..., word] += np.log(self.boost) * seen
        return logits


def log_p(model, history, token):
    """log P(token | history) the slow way: one row, normalised here."""
    logits = model.forward(np.array([history]))[0, -1]
    return logits[token] - np.log(np.exp(logits).sum())


def test_continuation_log_probs_read_each_token_after_its_history(monkeypatch):
    model = TinyLM()
    pairs = [([0], [2, 3]), ([1, 5], [3]), ([0, 7, 6, 1], [2, 4, 4]), ([7], [7])]
    expected = [[log_p(model, c + t[:j], t[j]) for j in range(len(t))] for c, t in pairs]
    assert np.log(0.5) == pytest.approx(expected[0][0])  # P[0, 2] by construction
    for budget in (2**24, 3 * 4 * V):  # one batch, or batches of a single sequence
        monkeypatch.setattr(zero_shot, "LOGITS_BUDGET", budget)
        found = continuation_log_probs(model, pairs)
        assert len(found) == len(pairs)
        for got, want in zip(found, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_continuations_keep_n_ctx_tokens_and_the_context_just_before_them():
    model = TinyLM(n_ctx=4)
    # 5 context tokens and 3 continuation tokens: only the context's last 2 fit (4 + 1 in all)
    (found,) = continuation_log_probs(model, [([5, 7, 7, 1, 7], [2, 3, 3])])
    expected = [log_p(model, [1, 7], 2), log_p(model, [1, 7, 2], 3), log_p(model, [1, 7, 2, 3], 3)]
    np.testing.assert_allclose(found, expected)  # the trigger 5 fell out of the window
    with pytest.raises(ValueError, match="non-empty context and continuation"):
        continuation_log_probs(model, [([], [2])])


def test_multiple_choice_picks_the_highest_mean_log_probability():
    model = TinyLM()
    # after the newline 0: 2 has p 0.5, 3 has p 0.3, 4 has p 0.2 / 6; after 2 or 7, 7 has
    # p 0.5. [2, 7, 7, 7] has the lowest sum of the first two (4 log 0.5 = -2.77 < log 0.3 =
    # -1.20) but the highest mean (log 0.5 = -0.69): the mean does not punish a long answer.
    questions = [([0], [[2, 7, 7, 7], [3], [4]]), ([7, 0], [[4], [3], [2, 4]])]
    scores = multiple_choice_scores(model, questions)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores[0], np.log([0.5, 0.3, 0.2 / 6]), rtol=1e-12)
    assert scores.argmax(axis=1).tolist() == [0, 1]


def test_label_words_are_read_against_their_probability_after_the_prompt_alone():
    model = TinyLM()
    # after the prompt 1, word 2 has p 0.7 and word 3 p 0.1 whatever the text: a model this
    # fond of 2 would call every text "2". Trigger 5 in a text triples the weight of 3 (0.1 ->
    # 0.3 / 1.2), trigger 6 that of 2: the calibrated score sees what the text changed.
    texts = [[7, 5, 7], [6, 7], [7, 7, 5]]
    scores = label_word_scores(model, texts, prompt=[1], words=[[2], [3]])
    z5 = 1 + 2 * 0.1  # the row after the prompt, 3's weight tripled, sums to 1.2
    assert scores[0] == pytest.approx([np.log(0.7 / z5 / 0.7), np.log(0.3 / z5 / 0.1)])
    assert scores.argmax(axis=1).tolist() == [1, 0, 1]
    uncalibrated = scores + np.log([0.7, 0.1])  # log P(w | text, prompt) alone
    assert uncalibrated.argmax(axis=1).tolist() == [0, 0, 0]  # the prior wins everywhere


def test_pmi_and_similarity_score_what_the_premise_adds():
    model = TinyLM()
    # hypothesis [3]: after the separator 0 its p is 0.3; a premise holding 5 makes it 0.9/1.6
    pairs = [([5, 7], [3]), ([7, 7], [3]), ([7, 5], [3]), ([7], [3])]
    following = following_scores(model, pairs, separator=[0])
    np.testing.assert_allclose(following, np.log([0.9 / 1.6, 0.3, 0.9 / 1.6, 0.3]), atol=1e-12)
    scores = pmi_scores(model, pairs, separator=[0])
    gain = np.log(0.9 / 1.6) - np.log(0.3)
    np.testing.assert_allclose(scores, [gain, 0.0, gain, 0.0], atol=1e-12)
    assert above_median(scores).tolist() == [1, 0, 1, 0]
    assert above_median(scores, positive=0).tolist() == [0, 1, 0, 1]
    # both orders, averaged: [3] before [5, 7] changes nothing of 5's and 7's probabilities
    np.testing.assert_allclose(similarity_scores(model, pairs, separator=[0]),
                               [gain / 2, 0.0, gain / 2, 0.0], atol=1e-12)


# ---- on a real GPT and a tokenizer ------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_gpt():
    train, _ = split_documents(load_text_dir(SAMPLE_DIR))
    tokenizer = BPETokenizer.train(train, vocab_size=320, mode="bytes", progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=64, n_embd=32, n_layer=1, n_head=2)
    return GPT(cfg, seed=0), tokenizer


def test_multiple_choice_on_a_gpt_picks_the_answer_its_logits_favour(sample_gpt):
    model, tokenizer = sample_gpt
    example = Example(("The king", " is dead", " sat upon", " the sea and the wind",
                       " o"), 0)
    context = tokenizer.encode("The king") + tokenizer.encode("\n")

    def mean_logp(answer):  # by hand: log-softmax of the logits, read at the answer's tokens
        ids = context + tokenizer.encode(answer)
        logits = model.forward(np.array([ids[:-1]]))[0].astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        start = len(context) - 1
        return np.mean([logp[start + i, t] for i, t in enumerate(ids[len(context) :])])

    best = int(np.argmax([mean_logp(a) for a in example.segments[1:]]))
    spec = SHAKESPEARE_TASKS["next-line"]
    for label in range(4):
        relabelled = [Example(example.segments, label)]
        assert zero_shot_accuracy(model, tokenizer, spec, relabelled) == float(label == best)


def test_every_shakespeare_task_has_a_heuristic(sample_gpt):
    model, tokenizer = sample_gpt
    texts = ["Good morrow, my lord.", "What news?", "None, sir.", "Then fare you well."]
    pairs = [Example((a, b), i % 2) for i, (a, b) in enumerate(zip(texts, texts[::-1],
                                                                    strict=True))]
    examples = {"genre": [Example((t,), i % 3) for i, t in enumerate(texts)],
                "word-order": pairs, "same-work": pairs,
                "next-line": [Example((t, *texts), i) for i, t in enumerate(texts)]}
    for name, spec in SHAKESPEARE_TASKS.items():
        found = zero_shot.zero_shot_predictions(model, tokenizer, spec, examples[name])
        assert len(found) == len(examples[name])
        assert set(found.tolist()) <= set(range(len(spec.labels)))
        value = zero_shot_accuracy(model, tokenizer, spec, examples[name])
        assert value == np.mean(found == [e.label for e in examples[name]])
    mood = TaskSpec("mood", "classification", ("sad", "glad"), "accuracy")
    with pytest.raises(ValueError, match="no zero-shot heuristic for task mood"):
        zero_shot.zero_shot_predictions(model, tokenizer, mood, examples["genre"])


# ---- the job: every kept snapshot of a pre-training run ----------------------------------------


@pytest.fixture
def pretraining_run(tmp_path, sample_gpt):
    """A pre-training run folder as pretrain --keep-every 2 leaves it: snapshots at steps 2 and
    4 (their weights: GPT(cfg, seed=step)), the last checkpoint at 5, the run's seed 3."""
    from minigpt1.training.checkpoint import save_checkpoint
    from minigpt1.training.optim import AdamW

    model, tokenizer = sample_gpt
    run = tmp_path / "pretrain"
    tokenizer.save(run / "tokenizer")
    state = {"config": model.cfg.to_dict(), "train": {"seed": 3}}
    for step in (2, 4, 5):
        params = GPT(model.cfg, seed=step).params
        save_checkpoint(run, step, params, AdamW(params).state_dict(), state, keep=step < 5)
    return run


def test_zero_shot_job_scores_step_zero_every_snapshot_and_the_last(pretraining_run, tmp_path,
                                                                    sample_gpt, monkeypatch):
    from minigpt1.jobs import zero_shot as job
    from minigpt1.jobs.run_folder import load_task
    from minigpt1.training.checkpoint import save_checkpoint
    from minigpt1.training.optim import AdamW

    model, tokenizer = sample_gpt
    plan = job.ZeroShotPlan(pretraining_run, tmp_path / "out", SAMPLE_DIR,
                            tasks=("genre", "next-line"), max_examples=6)
    points = job.run_zero_shot(plan, progress=False)
    assert [(p["step"], p["checkpoint"]) for p in points] == [
        (0, "fresh"), (2, "step-0000002"), (4, "step-0000004"), (5, "step-0000005")]
    genre = load_task("genre", text_dir=SAMPLE_DIR).splits["test"][:6]
    for point in points:  # each checkpoint's own weights; step 0: the run's config and seed
        weights = GPT(model.cfg, seed=3 if point["step"] == 0 else point["step"])
        assert point["scores"]["genre"] == zero_shot_accuracy(
            weights, tokenizer, SHAKESPEARE_TASKS["genre"], genre)
    saved = json.loads((tmp_path / "out" / "zero_shot.json").read_text())
    assert saved["steps"] == points and saved["examples"] == {"genre": 6, "next-line": 6}
    table = (tmp_path / "out" / "zero_shot.md").read_text()
    assert "| updates | genre | next-line | average |" in table
    assert "\n| chance | 33.3 | 25.0 | 29.2 |\n" in table
    scores = points[1]["scores"]
    assert (f"\n| 2 | {100 * scores['genre']:.1f} | {100 * scores['next-line']:.1f} | "
            f"{50 * (scores['genre'] + scores['next-line']):.1f} |\n") in table
    assert (tmp_path / "out" / "zero_shot.png").stat().st_size > 10_000

    # a rerun scores only what is new: the pre-training run kept going to step 6
    params = GPT(model.cfg, seed=6).params
    save_checkpoint(pretraining_run, 6, params, AdamW(params).state_dict(),
                    {"config": model.cfg.to_dict(), "train": {"seed": 3}})
    scored = []
    real = job.zero_shot_accuracy
    monkeypatch.setattr(job, "zero_shot_accuracy",
                        lambda m, *args: scored.append(m) or real(m, *args))
    points = job.run_zero_shot(plan, progress=False)
    assert [p["step"] for p in points] == [0, 2, 4, 5, 6]  # step 5 stays: it was scored
    assert len(scored) == 2  # step 6 on its two tasks, nothing else
    with pytest.raises(FileExistsError, match="other settings"):
        job.run_zero_shot(job.ZeroShotPlan(pretraining_run, tmp_path / "out", SAMPLE_DIR))
