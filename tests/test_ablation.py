"""The ablation end to end over seeds (on the sample corpus): its runs, files and numbers, a
rerun that continues it, and the table's wording on hand-made numbers."""

import json
import math

import numpy as np
import pytest

from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.finetuning.statistics import Summary, summarize
from minigpt1.jobs import ablation
from minigpt1.jobs.ablation import VARIANTS, AblationPlan, ablation_config, markdown_table
from tests.conftest import sample_model_folder


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """An untrained small GPT with a tokenizer of the sample corpus, as a model folder."""
    return sample_model_folder(tmp_path_factory.mktemp("model"), 320, n_embd=32, n_layer=1,
                               n_head=2)


def quick_plan(model, out, **changes):
    """Two seeds of every variant on genre, 32 examples, 2 updates each."""
    fcfg = ablation_config(epochs=1, batch_size=16, max_train_examples=32, seed=5)
    return AblationPlan(model, out, **{"text_dir": SAMPLE_DIR, "finetune": fcfg,
                                       "tasks": ("genre",), "seeds": 2, **changes})


def run_calls(monkeypatch):
    """Record the FinetunePlan of every fine-tuning run the ablation starts."""
    calls, real = [], ablation.run_finetuning
    monkeypatch.setattr(ablation, "run_finetuning",
                        lambda plan, *args, **kw: calls.append(plan) or real(plan, *args, **kw))
    return calls


def test_ablation_over_seeds_and_a_rerun_that_continues_it(sample_model, tmp_path,
                                                            monkeypatch):
    out = tmp_path / "ablation"
    calls = run_calls(monkeypatch)
    found, zero_shot = ablation.run_ablation(quick_plan(sample_model, out), progress=False)
    assert len(calls) == len(VARIANTS) * 2
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["seeds"] == [5, 6] and saved["test_examples"] == {"genre": 12}
    for variant, fields in VARIANTS.items():
        per_seed = saved["per_seed"][variant]["genre"]
        assert set(per_seed) == {"5", "6"}
        for seed, score in per_seed.items():  # each score is its run folder's
            folder = ablation.run_folder(out, variant, "genre", int(seed))
            assert score == json.loads((folder / "results.json").read_text())["test"]
            run = json.loads((folder / "run.json").read_text())
            assert run["finetune"]["seed"] == int(seed)
            assert (run["finetune"]["transfer_layers"], run["finetune"]["lm_coef"]) == fields
        expected = summarize(list(per_seed.values()))
        assert saved["summary"][variant]["genre"]["mean"] == pytest.approx(expected.mean)
        assert found[variant]["genre"] == expected
    # the seeds train on the same examples (the 32 drawn with the base seed), in other orders
    runs = [ablation.run_folder(out, "pre-training + L3", "genre", s) for s in (5, 6)]
    digests = {json.loads((r / "run.json").read_text())["examples"] for r in runs}
    assert len(digests) == 1
    first = [json.loads((r / "metrics.jsonl").read_text().splitlines()[0])["l2"] for r in runs]
    assert first[0] != first[1]  # another head, data order and dropout: another first loss
    l2_only = ablation.run_folder(out, "pre-training + L2", "genre", 5) / "metrics.jsonl"
    assert all(json.loads(line)["l1"] is None for line in l2_only.read_text().splitlines())
    table = (out / "ablation.md").read_text()
    mean, half = 100 * found["pre-training + L3"]["genre"].mean, 100 * found[
        "pre-training + L3"]["genre"].half_width
    assert f"| pre-training + L3 | {mean:.1f} ± {half:.1f} |" in table
    assert "\n| chance | 33.3 | 33.3 | |\n" in table
    assert f"| zero-shot (the pre-trained LM alone) | {100 * zero_shot['genre']:.1f} |" in table
    assert "over 2 seeds (Student's t, 1 degree of freedom)" in table
    assert "| pre-training + L3 − no pre-training + L3 |" in table
    assert (out / "ablation.png").stat().st_size > 10_000

    # a rerun with the same settings fine-tunes nothing again; a third seed adds its runs
    calls.clear()
    again, _ = ablation.run_ablation(quick_plan(sample_model, out), progress=False)
    assert calls == [] and again == found
    (runs[1] / "results.json").unlink()  # as if stopped in its last update: it resumes
    ablation.run_ablation(quick_plan(sample_model, out, seeds=3), progress=False)
    assert [(p.run_dir, p.resume) for p in calls] == [(runs[1], True)] + [
        (ablation.run_folder(out, v, "genre", 7), False) for v in VARIANTS]
    saved = json.loads((out / "ablation.json").read_text())
    assert set(saved["per_seed"]["pre-training + L3"]["genre"]) == {"5", "6", "7"}

    with pytest.raises(FileExistsError, match="already holds an ablation experiment with "
                                              "other settings: they differ in finetune"):
        ablation.run_ablation(quick_plan(sample_model, out, finetune=ablation_config()))


def test_a_refused_ablation_writes_nothing(sample_model, tmp_path):
    with pytest.raises(FileNotFoundError):
        ablation.run_ablation(quick_plan(sample_model, tmp_path / "a", text_dir=tmp_path / "no"))
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        ablation.run_ablation(quick_plan(tmp_path / "missing", tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_a_folder_of_other_files_is_not_taken_for_an_ablation(sample_model, tmp_path):
    (tmp_path / "ablation.md").write_text("an ablation of an earlier version")
    with pytest.raises(FileExistsError, match="already holds an ablation or other files, but "
                                              "no settings.json"):
        ablation.run_ablation(quick_plan(sample_model, tmp_path), progress=False)


def table_of(scores):
    """A markdown table from {variant: {task: [score per seed]}} on the four tasks."""
    found = ablation.summaries({v: {t: dict(enumerate(s)) for t, s in by_task.items()}
                                for v, by_task in scores.items()})
    sizes = {"genre": 798, "word-order": 800, "same-work": 800, "next-line": 800}
    return markdown_table(found, {t: 0.3 for t in sizes}, ablation.TASKS, sizes)


def test_markdown_table_on_hand_made_numbers():
    tasks = ("genre", "word-order", "same-work", "next-line")
    scores = {
        "pre-training + L3": dict(zip(tasks, ([0.66, 0.67, 0.68], [0.52, 0.50, 0.54],
                                              [0.50, 0.52, 0.51], [0.33, 0.31, 0.32]),
                                      strict=True)),
        "no pre-training + L3": dict(zip(tasks, ([0.34, 0.33, 0.35], [0.50, 0.51, 0.49],
                                                 [0.50, 0.51, 0.52], [0.25, 0.26, 0.24]),
                                         strict=True)),
    }
    table = table_of(scores)
    # genre 67.0 +- t(0.975, 2) x sd 1.0 / sqrt(3) = 4.303 x 0.577 = 2.5; the average column
    # summarizes the seeds' averages 50.25, 50.0 and 51.25: sd 0.661, so +- 1.6
    assert ("| pre-training + L3 | 67.0 ± 2.5 | 52.0 ± 5.0 | 51.0 ± 2.5 | 32.0 ± 2.5 "
            "| 50.5 ± 1.6 | 74.7 |") in table
    assert "| no pre-training + L3 | 34.0 ± 2.5 | 50.0 ± 2.5 |" in table
    assert "\n| chance | 33.3 | 50.0 | 50.0 | 25.0 | 39.6 | |\n" in table
    assert "| zero-shot (the pre-trained LM alone) | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | |" in table
    # genre: +33.0 with se = sqrt(1^2/3 + 1^2/3) = 0.82 points: resolved; word-order: +2.0
    # with se = sqrt(2^2/3 + 1^2/3) = 1.29: not resolved; same-work: +0.0, not resolved
    assert ("| pre-training + L3 − no pre-training + L3 | +33.0 (2 SE = 1.6): resolved "
            "| +2.0 (2 SE = 2.6): not resolved | +0.0 (2 SE = 1.6): not resolved "
            "| +7.0 (2 SE = 1.6): resolved | +10.5 (2 SE = 0.8): resolved |") in table
    assert "Test examples: genre 798, word-order 800, same-work 800, next-line 800" in table
    assert "1.8 points (one standard error) for an accuracy near 50% on 798 examples" in table


def test_one_seed_gives_means_and_resolves_nothing():
    table = table_of({"pre-training + L3": {t: [0.6] for t in ablation.TASKS},
                      "pre-training + L2": {t: [0.4] for t in ablation.TASKS}})
    assert "| pre-training + L3 | 60.0 | 60.0 | 60.0 | 60.0 | 60.0 | 74.7 |" in table
    assert "one seed: no interval" in table
    assert table.count("+20.0: not resolved (one seed has no spread; run more seeds)") == 5


def test_a_table_of_one_score_per_variant():
    # as lesson 06 builds it: one run's test score per variant and task, no zero-shot
    table = markdown_table({"pre-training + L3": {"genre": 0.40},
                            "no pre-training + L3": {"genre": 0.35}}, None, tasks=("genre",))
    assert "| pre-training + L3 | 40.0 | 40.0 | 74.7 |" in table
    assert "\n| chance | 33.3 | 33.3 | |\n" in table and "zero-shot" not in table
    assert "| pre-training + L3 − no pre-training + L3 | +5.0: not resolved" in table


def test_summaries_of_identical_seeds_have_a_zero_interval():
    found = ablation.summaries({"v": {"genre": {0: 0.5, 1: 0.5}}})
    assert found["v"]["genre"] == Summary(2, 0.5, 0.0, 0.0)
    assert ablation.cell(found["v"]["genre"]) == "50.0 ± 0.0"
    assert ablation.cell(Summary(1, 0.5, math.nan, math.nan)) == "50.0"
    assert np.isnan(summarize([0.5]).half_width)


def test_ctrl_c_in_a_run_says_how_to_continue(sample_model, tmp_path, monkeypatch):
    from minigpt1.training.loop import StoppedEarly

    def stopped(plan, *args, **kwargs):
        raise StoppedEarly("stopped at step 1; continue with --resume")

    monkeypatch.setattr(ablation, "run_finetuning", stopped)
    monkeypatch.setattr(ablation, "zero_shot_scores", lambda *args: {})  # not what is tested
    with pytest.raises(StoppedEarly, match="stopped pre-training . L3 on genre, seed 5, after "
                                           "saving it in .*give the same command again"):
        ablation.run_ablation(quick_plan(sample_model, tmp_path / "a"), progress=False)
    assert (tmp_path / "a" / "settings.json").exists()  # what a rerun continues from
