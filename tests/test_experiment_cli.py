"""The experiment commands end to end through the command line: `ablation`, `transfer` and
`zero-shot` on a tiny pre-training run of the sample corpus that kept snapshots. Each writes
its per-seed (or per-checkpoint) numbers, the means of the tables are the means of those
numbers, --which reads a kept snapshot, and the same command again runs nothing twice."""

import json
import re
import shutil

import numpy as np
import pytest

from minigpt1.cli import main
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.finetuning.shakespeare_tasks import SHAKESPEARE_TASKS
from minigpt1.finetuning.zero_shot import zero_shot_accuracy
from minigpt1.jobs.ablation import VARIANTS, run_folder
from minigpt1.jobs.run_folder import load_model, load_task

# 2 x 64 blocks, 5 updates: checkpoints at 2 and 4 (kept: --keep-every 2) and the last at 5
PRETRAIN = ["--preset", "tiny", "--n-layer", "2", "--n-embd", "64", "--n-head", "2",
            "--n-ctx", "32", "--vocab-size", "300", "--batch-size", "4",
            "--micro-batch-size", "4", "--warmup-steps", "1", "--max-steps", "5",
            "--eval-every", "2", "--keep-every", "2", "--eval-windows", "2"]
# one task, two seeds, one update of 8 examples per run
QUICK = ["--tasks", "genre", "--seeds", "2", "--seed", "3", "--epochs", "1",
         "--max-train-examples", "8", "--batch-size", "8", "--micro-batch-size", "8"]
SNAPSHOT = "step-0000004"
A_RUN, A_CHECKPOINT = r"^--- .*, seed \d+ ---$", r"^step \d+: "


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The pre-training run folder; its run.json names the corpus the tasks are cut from."""
    base = tmp_path_factory.mktemp("experiments")
    shutil.copytree(SAMPLE_DIR.parent, base / "sample")  # the texts and their metadata.csv
    assert main(["pretrain", "--text-dir", str(base / "sample" / "texts"), "--out",
                 str(base / "run"), *PRETRAIN]) == 0
    index = json.loads((base / "run" / "checkpoints" / "index.json").read_text())
    assert index["kept"] == ["step-0000002", SNAPSHOT] and index["last"] == "step-0000005"
    return base / "run"


def texts_of(run):
    return json.loads((run / "run.json").read_text())["text_dir"]


def snapshot_of(out):
    """{path: (bytes, mtime)} of every file in an experiment folder but the locks'."""
    return {path: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(out.rglob("*")) if path.is_file() and ".lock" not in path.name}


def started(capsys, line):
    """How many runs (or checkpoints) the command just started: the lines it printed for them
    ("--- pre-training + L3: genre, seed 3 ---", "step 4: genre 0.500")."""
    return len(re.findall(line, capsys.readouterr().out, flags=re.M))


def assert_rerun_runs_nothing(argv, out, capsys, line, tables):
    """The same command again starts nothing, leaves every run folder and score file as it
    was, and rewrites the tables with the same numbers."""
    before = snapshot_of(out)
    assert main(argv) == 0
    assert started(capsys, line) == 0
    after = snapshot_of(out)
    assert set(after) == set(before)
    for path, (data, mtime) in before.items():
        assert after[path][0] == data, path
        if path.name not in tables:
            assert after[path][1] == mtime, path


def assert_means_of_seeds(saved, variants, seeds):
    """Each variant's genre scores: one per seed, as its run folder's results.json holds them,
    and the summary's mean is their mean."""
    for variant in variants:
        per_seed = saved["per_seed"][variant]["genre"]
        assert sorted(per_seed) == [str(s) for s in seeds]
        assert saved["summary"][variant]["genre"]["mean"] == pytest.approx(
            np.mean(list(per_seed.values())), abs=1e-12)
        assert saved["summary"][variant]["genre"]["n"] == len(seeds)
        assert saved["summary"][variant]["average"]["mean"] == pytest.approx(
            saved["summary"][variant]["genre"]["mean"], abs=1e-12)  # one task: its own


def test_ablation_over_seeds_from_a_kept_snapshot(run, tmp_path, capsys):
    out = tmp_path / "ablation"
    argv = ["ablation", "--checkpoint", str(run), "--out", str(out), "--which", SNAPSHOT,
            *QUICK]
    assert main(argv) == 0
    assert started(capsys, A_RUN) == len(VARIANTS) * 2
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["seeds"] == [3, 4]
    assert_means_of_seeds(saved, VARIANTS, [3, 4])
    for variant in VARIANTS:
        for seed in (3, 4):
            folder = run_folder(out, variant, "genre", seed)
            results = json.loads((folder / "results.json").read_text())
            assert saved["per_seed"][variant]["genre"][str(seed)] == results["test"]
            assert json.loads((folder / "run.json").read_text())["which"] == SNAPSHOT
    # the zero-shot row is the snapshot's, on the same test split (cut with --seed 3)
    model, tokenizer = load_model(run, SNAPSHOT)
    test = load_task("genre", text_dir=texts_of(run), seed=3).splits["test"]
    assert saved["test_examples"] == {"genre": len(test)}
    assert saved["zero_shot"]["genre"] == zero_shot_accuracy(
        model, tokenizer, SHAKESPEARE_TASKS["genre"], test, progress=False)
    assert_rerun_runs_nothing(argv, out, capsys, A_RUN, ("ablation.md", "ablation.json",
                                                         "ablation.png"))


def test_transfer_of_every_number_of_blocks(run, tmp_path, capsys):
    out = tmp_path / "transfer"
    argv = ["transfer", "--checkpoint", str(run), "--out", str(out), "--which", "last", *QUICK]
    assert main(argv) == 0
    assert started(capsys, A_RUN) == 3 * 2
    saved = json.loads((out / "transfer.json").read_text())
    assert saved["n_layer"] == 2 and saved["layers"] == [0, 1, 2]  # 0 .. n_layer by default
    assert_means_of_seeds(saved, [f"{n} blocks" for n in (0, 1, 2)], [3, 4])
    for n in (0, 1, 2):
        run_json = json.loads((out / f"{n}-blocks" / "genre" / "seed-4" / "run.json").read_text())
        assert (run_json["finetune"]["transfer_layers"], run_json["finetune"]["lm_coef"]) == (
            n, 0.5)
    assert (out / "transfer.png").stat().st_size > 10_000
    assert_rerun_runs_nothing(argv, out, capsys, A_RUN, ("transfer.md", "transfer.json",
                                                         "transfer.png"))


def test_zero_shot_scores_step_zero_every_snapshot_and_the_last(run, tmp_path, capsys):
    out = tmp_path / "zero-shot"
    argv = ["zero-shot", "--checkpoint", str(run), "--out", str(out), "--tasks", "genre",
            "--max-examples", "6"]
    assert main(argv) == 0
    assert started(capsys, A_CHECKPOINT) == 4
    saved = json.loads((out / "zero_shot.json").read_text())
    assert [(p["step"], p["checkpoint"]) for p in saved["steps"]] == [
        (0, "fresh"), (2, "step-0000002"), (4, SNAPSHOT), (5, "step-0000005")]
    assert saved["examples"] == {"genre": 6}
    assert sorted(path.name for path in (out / "steps").iterdir()) == [
        "step-0000000.json", "step-0000002.json", "step-0000004.json", "step-0000005.json"]
    model, tokenizer = load_model(run, SNAPSHOT)
    first = load_task("genre", text_dir=texts_of(run), seed=0).splits["test"][:6]
    assert saved["steps"][2]["scores"]["genre"] == zero_shot_accuracy(
        model, tokenizer, SHAKESPEARE_TASKS["genre"], first, progress=False)
    table = (out / "zero_shot.md").read_text()
    assert sum(line.startswith(("| 0 |", "| 2 |", "| 4 |", "| 5 |"))
               for line in table.splitlines()) == 4
    assert_rerun_runs_nothing(argv, out, capsys, A_CHECKPOINT, ("zero_shot.md", "zero_shot.json",
                                                                "zero_shot.png"))
