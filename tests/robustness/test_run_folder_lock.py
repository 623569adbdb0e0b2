"""One writer per run folder: a job holds RUN/.lock (filelock) from its first check to its
last file, so a second pretrain on a live run, its --force or its --resume, stops with exit
1 naming the process that holds the folder, before it reads or deletes anything. A holder
killed with kill -9 releases the lock with its death: the next run takes the folder over.
generate reads a folder while it trains, and takes no lock.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minigpt1.jobs.run_folder import HOLDER, LOCK, RunFolderInUse, hold_run_dir, start_run_dir
from minigpt1.training.checkpoint import load_checkpoint
from tests.conftest import start_minigpt1, wait_for

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--preset", "tiny", "--n-ctx", "32", "--batch-size", "4",
         "--micro-batch-size", "2", "--warmup-steps", "4", "--eval-every", "4",
         "--eval-windows", "4", "--log-every", "1", "--max-steps", "100000"]



def finish(proc):
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def snapshot(folder):
    """Every file under folder with its bytes, but for what the live run still writes: the
    lock's holder note, metrics.jsonl and checkpoints/, which is not even listed (the run
    deletes its older checkpoints while the snapshot walks)."""
    files = {}
    for parent, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if name != "checkpoints")
        for name in sorted(set(names) - {HOLDER, "metrics.jsonl"}):
            path = Path(parent, name)
            files[str(path.relative_to(folder))] = path.read_bytes()
    return files


def test_a_second_writer_on_a_live_run_is_refused_and_the_first_finishes_intact(corpus,
                                                                                  tmp_path):
    texts, tokenizer = corpus
    run = tmp_path / "run"
    first = start_minigpt1("pretrain", "--text-dir", texts, "--out", run, "--tokenizer",
                           tokenizer, *FLAGS)
    # past its first checkpoint and the step its schedule is fixed at (run.json then final)
    wait_for(lambda: len(lines(run / "metrics.jsonl")) >= 12, first, timeout=300)
    before = snapshot(run)
    assert {"run.json", "tokenizer/vocab.json"} <= before.keys()
    for extra in ([], ["--force"], ["--resume"]):
        code, _, err = finish(start_minigpt1("pretrain", "--text-dir", texts, "--out", run,
                                             "--tokenizer", tokenizer, *FLAGS, *extra))
        assert code == 1, (extra, err)
        assert f"in use by process {first.pid}" in err, err
        assert "python -m minigpt1 pretrain" in err and "Traceback" not in err
        assert snapshot(run) == before, extra  # --force deleted nothing
    # a reader needs no lock: generate samples the last complete checkpoint meanwhile
    code, out, err = finish(start_minigpt1("generate", "--checkpoint", run, "--max-new-tokens", 5))
    assert code == 0, err
    first.send_signal(signal.SIGINT)  # stop the first run: it saves, and ends as it should
    code, _, err = finish(first)
    assert code == 130, err
    assert snapshot(run) == before
    steps = [json.loads(line)["step"] for line in lines(run / "metrics.jsonl")]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no duplicated, reordered lines
    assert load_checkpoint(run).step == steps[-1]
    assert not (run / HOLDER).exists()
    with hold_run_dir(run):  # released when the run ended
        pass


HOLD = textwrap.dedent("""
    import sys, time
    from minigpt1.jobs.run_folder import hold_run_dir
    with hold_run_dir(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
""")


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(RunFolderInUse, match=f"process {holder.pid} "), hold_run_dir(run):
        pass
    holder.kill()  # kill -9: no clean-up ran, its .lock and holder note are still there
    holder.wait()
    assert (run / LOCK).exists() and (run / HOLDER).exists()
    with hold_run_dir(run):  # taken over, no manual clean-up
        assert json.loads((run / HOLDER).read_text())["pid"] != holder.pid


def test_force_empties_a_held_folder_but_keeps_its_lock(tmp_path):
    run = tmp_path / "run"
    (run / "tokenizer").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    with hold_run_dir(run):
        start_run_dir(run)
        assert sorted(p.name for p in run.iterdir()) == sorted([LOCK, HOLDER])
        with pytest.raises(RunFolderInUse), hold_run_dir(run):  # still held
            pass


def test_a_refused_job_leaves_no_folder_behind(corpus, tmp_path, capsys):
    from minigpt1.cli import main

    texts, _ = corpus
    run = tmp_path / "new"
    assert main(["pretrain", "--text-dir", str(texts), "--out", str(run), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert not run.exists()  # the folder made to hold the lock went with it


@pytest.mark.parametrize("job", ["finetune", "ablation"])
def test_finetune_and_ablation_hold_their_folder_too(tmp_path, job):
    from minigpt1.jobs.ablation import AblationPlan, run_ablation
    from minigpt1.jobs.finetune import FinetunePlan, run_finetuning

    out = tmp_path / "out"
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("a file a --force would delete")
    start = {"finetune": lambda: run_finetuning(FinetunePlan("no-model", "genre", out,
                                                             force=True)),
             "ablation": lambda: run_ablation(AblationPlan("no-model", out, force=True))}[job]
    with hold_run_dir(out), pytest.raises(RunFolderInUse, match="in use by process"):
        start()  # refused before it looks at its (missing) model
    assert (out / "keep.txt").exists()
