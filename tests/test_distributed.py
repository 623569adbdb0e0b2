"""Data parallelism (minigpt1/distributed.py) with 2 ranks started by mpiexec.

The contract: N ranks sharing an update's batch compute the update one process computes from
the same batch, so their weights are those of one process cutting the batch into the same
shards (bit for bit, dropout on, when each rank holds a power of two of them), and those of
one process in other shards (float64, to rounding). Runs resume exactly; a dead or hung rank
stops them all.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import backend
from minigpt1.cli import main
from minigpt1.training.checkpoint import load_checkpoint
from minigpt1.training.distributed import SINGLE, World, find_mpiexec
from minigpt1.training.update import rank_micro_batches
from tests.conftest import IN_CI, wait_for

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "mpi_worker.py"
TINY = ["--preset", "tiny", "--n-ctx", "32", "--warmup-steps", "4", "--eval-windows", "4",
        "--lr", "3e-3", "--log-every", "1", "--dropout", "0.1"]


@pytest.fixture(scope="module")
def mpiexec():
    """The mpiexec of requirements-distributed.txt; in CI its absence fails, never skips."""
    found = find_mpiexec()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        message = "mpi4py and mpiexec are needed (pip install -r requirements-distributed.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def launch(mpiexec, n, *args, **kwargs):
    """Start `mpiexec -n n python ARGS`; stdout and stderr piped."""
    # one BLAS thread per rank: mpi_worker.py does not call tune_process()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [mpiexec, "-n", str(n), sys.executable, *map(str, args)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(proc, timeout=180):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_ok(mpiexec, n, *args):
    status, out, err = finish(launch(mpiexec, n, *args))
    assert status == 0, f"exit {status}\n{out}\n{err}"
    return out


def reference(tmp_path, name, *args):
    """The one-process run of mpi_worker.py: its saved weights and losses."""
    out = tmp_path / f"{name}.npz"
    subprocess.run([sys.executable, WORKER, "train", out, "--single", *args], check=True,
                   cwd=ROOT)
    return np.load(out)


def worker_run(mpiexec, tmp_path, name, *args, ranks=2):
    out = tmp_path / f"{name}.npz"
    run_ok(mpiexec, ranks, WORKER, "train", out, *args)
    return np.load(out)


# --- the update: 2 ranks x b == 1 process with 2b ----------------------------------------------


@pytest.mark.mpi
def test_two_ranks_equal_one_process_in_the_same_shards_bit_for_bit(mpiexec, tmp_path):
    """Shards of 2 sequences: 2 per rank, 4 in one process, added in the same tree; each
    sequence draws the same dropout masks wherever it runs."""
    common = ["--steps", "4", "--batch", "8", "--dropout", "0.1", "--micro", "2"]
    two = worker_run(mpiexec, tmp_path, "two", *common)
    one = reference(tmp_path, "one", *common)
    for name in one.files:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


@pytest.mark.mpi
def test_three_ranks_equal_one_process_accumulating_to_rounding(mpiexec, tmp_path):
    """With 3 terms MPI may sum in another order than accumulation does: equal to rounding
    (3 ranks on 2 cores: mpiexec oversubscribes them)."""
    common = ["--steps", "4", "--batch", "6", "--micro", "2", "--dropout", "0.1"]
    three = worker_run(mpiexec, tmp_path, "three", *common, ranks=3)
    one = reference(tmp_path, "one", *common)
    for name in one.files:
        np.testing.assert_allclose(three[name], one[name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.mpi
def test_two_ranks_equal_one_process_with_the_whole_batch_at_once(mpiexec, tmp_path):
    common = ["--steps", "4", "--batch", "4", "--dropout", "0.0"]
    two = worker_run(mpiexec, tmp_path, "two", *common, "--micro", "2")
    one = reference(tmp_path, "one", *common, "--micro", "4")  # one batch of 4
    assert set(one.files) == set(two.files)
    for name in one.files:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-11, atol=1e-13, err_msg=name)
    assert not np.array_equal(two["losses"], reference(tmp_path, "other", "--steps", "4",
                                                       "--batch", "8")["losses"])


@pytest.mark.mpi
@pytest.mark.gpu
def test_two_ranks_on_gpus_equal_one_gpu_process_accumulating(mpiexec, tmp_path):
    """NCCL when each rank has a GPU of its own; through host memory when they share one
    (tests/gpu/run.sh runs this on a GPU machine)."""
    if not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine")
    common = ["--steps", "4", "--batch", "4", "--dropout", "0.1", "--device", "cuda"]
    two = worker_run(mpiexec, tmp_path, "two", *common, "--micro", "2")
    one = reference(tmp_path, "one", *common, "--micro", "2")
    for name in one.files:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


@pytest.mark.mpi
def test_ranks_start_from_rank_0s_weights_and_a_difference_is_caught(mpiexec):
    out = run_ok(mpiexec, 2, WORKER, "checksums")
    assert "weights differ (1 tensors, first h.1.mlp.c_fc.weight; ranks [1]" in out


# --- the commands: pretrain and finetune --distributed ------------------------------------------


def pretrain_args(texts, tokenizer, out, *extra):
    return ["-m", "minigpt1", "pretrain", "--text-dir", texts, "--tokenizer", tokenizer,
            "--out", out, "--batch-size", "4", "--micro-batch-size", "2", *TINY, *extra]


def metric_lines(run_dir):
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def same_runs(a, b):
    """Two run folders hold the same metrics and bit-identical last checkpoints."""
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step
    for name in ca.params:
        np.testing.assert_array_equal(ca.params[name], cb.params[name], err_msg=name)
    for name in ca.optimizer:
        np.testing.assert_array_equal(ca.optimizer[name], cb.optimizer[name], err_msg=name)


@pytest.fixture(scope="module")
def distributed_run(mpiexec, corpus, tmp_path_factory):
    """A 12-update pre-training run on 2 ranks, and the same on one process."""
    texts, tokenizer = corpus
    base = tmp_path_factory.mktemp("runs")
    extra = ["--max-steps", "12", "--eval-every", "4"]
    out = run_ok(mpiexec, 2, *pretrain_args(texts, tokenizer, base / "two", *extra),
                 "--distributed")
    subprocess.run([sys.executable, *pretrain_args(texts, tokenizer, base / "one", *extra)],
                   check=True, cwd=ROOT, capture_output=True)
    return base / "two", base / "one", out


@pytest.mark.mpi
def test_pretrain_on_two_ranks_writes_the_run_one_process_writes(distributed_run):
    two, one, out = distributed_run
    same_runs(two, one)
    assert "distributed: 2 ranks" in out and "2 ranks x 2 sequences = 4" in out
    assert out.count("done: 12 updates") == 1  # rank 0 alone reports


@pytest.mark.mpi
def test_a_killed_distributed_run_resumes_to_the_same_end_on_2_ranks_or_1(mpiexec, corpus,
                                                                         distributed_run,
                                                                         tmp_path):
    texts, tokenizer = corpus
    run_dir = tmp_path / "killed"
    args = pretrain_args(texts, tokenizer, run_dir, "--max-steps", "12", "--eval-every", "4")
    proc = launch(mpiexec, 2, *args, "--distributed")
    wait_for(lambda: (run_dir / "checkpoints" / "index.json").exists(), proc)
    kill_all(proc)  # mpiexec and both ranks, mid-run
    assert load_checkpoint(run_dir).step < 12, "the run ended before it could be killed"
    shutil.copytree(run_dir, tmp_path / "one")
    run_ok(mpiexec, 2, *pretrain_args(texts, tokenizer, run_dir), "--resume", "--distributed")
    same_runs(run_dir, distributed_run[0])
    subprocess.run([sys.executable, *pretrain_args(texts, tokenizer, tmp_path / "one"),
                    "--resume"], check=True, cwd=ROOT, capture_output=True)
    same_runs(tmp_path / "one", distributed_run[0])  # the same updates in micro-batches


@pytest.mark.mpi
def test_ctrl_c_stops_every_rank_at_the_same_update_after_a_checkpoint(mpiexec, corpus,
                                                                       tmp_path):
    texts, tokenizer = corpus
    run_dir = tmp_path / "run"
    args = pretrain_args(texts, tokenizer, run_dir, "--max-steps", "100000", "--eval-every",
                         "100000")
    proc = launch(mpiexec, 2, *args, "--distributed")
    wait_for(lambda: len(metric_lines(run_dir)) >= 3, proc)
    ranks = [rank_pid(proc, 0), rank_pid(proc, 1)]
    proc.send_signal(signal.SIGINT)  # mpiexec passes Ctrl-C on to the ranks
    status, out, err = finish(proc, timeout=60)
    stopped = load_checkpoint(run_dir).step
    assert status == 130, err
    assert err.count(f"interrupted: stopped at step {stopped}; continue with --resume") == 1
    assert "Traceback" not in err
    assert metric_lines(run_dir)[-1]["step"] == stopped
    assert all(gone(pid) for pid in ranks)


@pytest.mark.mpi
def test_a_wall_clock_budget_gives_every_rank_the_same_plan(mpiexec, corpus, tmp_path):
    texts, tokenizer = corpus
    run_dir = tmp_path / "run"
    args = pretrain_args(texts, tokenizer, run_dir, "--max-steps", "100000", "--minutes",
                         "0.02", "--dist-timeout", "30")
    out = run_ok(mpiexec, 2, *args, "--distributed")  # ranks planning apart would time out
    planned = int(out.split(" updates planned")[-2].split()[-1])  # the last fit's
    assert 10 <= planned < 100000
    assert f"done: {planned} updates" in out
    assert load_checkpoint(run_dir).step == metric_lines(run_dir)[-1]["step"] == planned


@pytest.mark.mpi
def test_finetune_on_two_ranks_updates_as_one_process_does(mpiexec, corpus, tmp_path):
    texts, _ = corpus
    pretrained = texts.parent / "first"  # the corpus fixture's one-update run
    args = ["-m", "minigpt1", "finetune", "--checkpoint", pretrained, "--task", "word-order",
            "--data", texts, "--epochs", "1", "--batch-size", "4", "--micro-batch-size", "2",
            "--max-train-examples", "16", "--lm-coef", "0.5", "--log-every", "1"]
    run_ok(mpiexec, 2, *args, "--out", tmp_path / "two", "--distributed")
    subprocess.run([sys.executable, *args, "--out", tmp_path / "one"], check=True, cwd=ROOT,
                   capture_output=True)
    same_runs(tmp_path / "two", tmp_path / "one")
    results = [json.loads((tmp_path / r / "results.json").read_text()) for r in ("two", "one")]
    assert results[0] == results[1]


# --- failures: clear errors, never a hang -------------------------------------------------------


def descendants(pid):
    """The processes started, directly or not, by process pid (mpiexec: its proxy and the
    ranks, which run in process groups of their own)."""
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent
    found, frontier = [], [pid]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def rank_pid(proc, rank):
    """The pid of the rank that mpiexec started as `rank` (its PMI_RANK says which)."""
    for pid in descendants(proc.pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environ:
            return pid
    pytest.fail(f"no rank {rank} among mpiexec's processes")


def gone(pid, within=20.0):
    """Whether process pid ends (or is a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if "zombie" in Path(f"/proc/{pid}/status").read_text():
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def kill_all(proc):
    """SIGKILL mpiexec and every process it started."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_a_rank_that_dies_or_hangs_stops_the_others_with_a_clear_error(mpiexec, corpus, tmp_path,
                                                                       how):
    texts, tokenizer = corpus
    run_dir = tmp_path / "run"
    args = pretrain_args(texts, tokenizer, run_dir, "--max-steps", "100000", "--eval-every",
                         "100000", "--dist-timeout", "5")
    proc = launch(mpiexec, 2, *args, "--distributed")
    wait_for(lambda: (run_dir / "metrics.jsonl").exists(), proc)
    started, survivor = time.monotonic(), rank_pid(proc, 0)
    os.kill(rank_pid(proc, 1), signal.SIGKILL if how == "dies" else signal.SIGSTOP)
    status, out, err = finish(proc, timeout=60)
    assert status != 0
    assert time.monotonic() - started < 30
    assert gone(survivor), "rank 0 outlived the run"
    if how == "hangs":  # rank 0 gave up waiting, said why and stopped every rank
        # while summing the gradients, or agreeing whether to stop: where rank 1 froze decides
        assert "error: rank 0 waited 5 s for the other ranks while " in err, (out, err)
        assert "one of them has died or hangs" in err and "--resume" in err
    else:  # the launcher saw rank 1 end, said so and stopped rank 0
        assert "BAD TERMINATION" in out and "Killed (signal 9)" in out, out


@pytest.mark.mpi
def test_a_batch_the_ranks_cannot_share_is_refused_before_anything_is_written(mpiexec, corpus,
                                                                               tmp_path):
    texts, tokenizer = corpus
    args = pretrain_args(texts, tokenizer, tmp_path / "run", "--batch-size", "5",
                         "--micro-batch-size", "5")
    status, out, err = finish(launch(mpiexec, 2, *args, "--distributed"))
    assert status == 1
    assert "a batch of 5 sequences does not split evenly over 2 ranks" in err
    assert not (tmp_path / "run").exists()


# --- without mpiexec ---------------------------------------------------------------------------


def test_distributed_without_mpi4py_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` now fails
    status = main(["pretrain", "--out", str(tmp_path / "run"), "--distributed"])
    assert status == 1
    err = capsys.readouterr().err
    assert "--distributed needs mpi4py" in err and "requirements-distributed.txt" in err
    assert "mpiexec -n N" in err and "Traceback" not in err


def test_one_process_is_a_world_of_one():
    assert (SINGLE.rank, SINGLE.size, SINGLE.is_writer) == (0, 1, True)
    grads = {"w": np.ones(3)}
    assert SINGLE.sum_gradients(grads, (2.0,)) == (grads, (2.0,))
    assert SINGLE.agree(True) and not SINGLE.agree(False)
    assert SINGLE.broadcast({"a": 1}) == {"a": 1}
    assert SINGLE.shard(8) == slice(0, 8)


class FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_each_rank_takes_its_own_rows_and_micro_batches():
    worlds = [World(FakeComm(rank, 4)) for rank in range(4)]
    rows = [rank_micro_batches(w, 16, 2) for w in worlds]
    assert [r[0] for r in rows] == [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16)]
    assert [r[1] for r in rows] == [2] * 4
    assert rank_micro_batches(worlds[1], 8, 8) == (slice(2, 4), 2)  # capped at its share
    with pytest.raises(ValueError, match="does not split evenly over 4 ranks"):
        worlds[0].shard(10)
    with pytest.raises(ValueError, match="do not split into micro-batches of 3"):
        rank_micro_batches(worlds[0], 16, 3)
