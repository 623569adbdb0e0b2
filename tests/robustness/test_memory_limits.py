"""The memory check knows every limit on this process and every buffer of an update.

Before: it read MemAvailable only, so under `ulimit -v` (RLIMIT_AS) or in a container (a cgroup
memory limit) it passed updates that then died with a MemoryError deep inside a training step,
or were killed by the kernel without a word; and it left out the int64 windows of the whole
batch, so `--batch-size 1000000000 --micro-batch-size 1` passed and died with MemoryError.
After: the tightest limit counts, the windows count, and the run is refused before its folder
is made, with the micro-batch size (or the batch size) that fits.
"""

import re
import subprocess
import sys

import pytest

from minigpt1.cli import main
from minigpt1.config import GPTConfig
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.fast.batch_threads import blas_threads
from minigpt1.training import estimate
from minigpt1.training.estimate import check_fits, estimate_memory, memory_limits

GIB = 2**30
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc and rlimit")

# Runs the real command line under an address-space limit of what the process maps once
# NumPy and its BLAS threads are up, plus argv[1] bytes: the same headroom on any machine.
UNDER_RLIMIT = """
import resource, sys
import numpy as np
from minigpt1.cli import main
np.ones((64, 64)) @ np.ones((64, 64))
kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:"))
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (kb * 1024 + int(sys.argv[1]), hard))
sys.exit(main(sys.argv[2:]))
"""


def pretrain_args(corpus, out, batch, micro):
    return ["pretrain", "--text-dir", str(SAMPLE_DIR), "--tokenizer", str(corpus[1]),
            "--out", str(out), "--preset", "tiny", "--batch-size", str(batch),
            "--micro-batch-size", str(micro), "--max-steps", "1", "--warmup-steps", "1",
            "--eval-windows", "2"]


def under_rlimit(headroom, args):
    return subprocess.run([sys.executable, "-c", UNDER_RLIMIT, str(headroom), *args],
                          capture_output=True, text=True, timeout=600)


@LINUX
def test_rlimit_as_is_honoured_and_the_advised_micro_batch_runs(tmp_path, corpus):
    # tiny at 128 tokens: about 0.8 GiB of activations for 64 sequences, half that for 32
    refused = under_rlimit(700 * 2**20, pretrain_args(corpus, tmp_path / "run", 64, 64))
    assert refused.returncode == 1, refused.stderr
    assert "RLIMIT_AS" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "run").exists()
    advised = int(re.search(r"use --micro-batch-size (\d+)", refused.stderr).group(1))
    assert 1 <= advised < 64 and 64 % advised == 0
    done = under_rlimit(700 * 2**20, pretrain_args(corpus, tmp_path / "run", 64, advised))
    assert done.returncode == 0, done.stderr


def test_the_window_array_is_counted(tmp_path, corpus, capsys):
    cfg = GPTConfig.preset("tiny")
    memory = estimate_memory(cfg, 1, cfg.n_ctx, batch_size=1000)
    assert memory["batch windows"] == 16 * 1000 * (cfg.n_ctx + 1)
    status = main(pretrain_args(corpus, tmp_path / "run", 10**9, 1))
    err = capsys.readouterr().err
    assert status == 1 and "use a smaller --batch-size" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def fake_system(root, cgroup, files, mem_available=64 * GIB):
    """A /proc and a /sys/fs/cgroup under `root`: this process is in `cgroup` (the lines of
    /proc/self/cgroup); `files` maps paths under the cgroup mount to their contents."""
    (root / "proc" / "self").mkdir(parents=True)
    meminfo = f"MemTotal: 1 kB\nMemAvailable: {mem_available // 1024} kB\n"
    (root / "proc" / "meminfo").write_text(meminfo)
    (root / "proc" / "self" / "cgroup").write_text(cgroup)
    for name, text in files.items():
        (root / "cgroup" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "cgroup" / name).write_text(text)
    return root / "proc", root / "cgroup"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    def install(cgroup, files, **kw):
        proc, fs = fake_system(tmp_path / "sys", cgroup, files, **kw)
        monkeypatch.setattr(estimate, "PROC", proc)
        monkeypatch.setattr(estimate, "CGROUP_FS", fs)
    return install


CONTAINER_V2 = {  # the limit sits on the parent of the process's own cgroup
    "job.slice/memory.max": str(1 * GIB), "job.slice/memory.current": str(800 * 2**20),
    "job.slice/memory.stat": "anon 1\ninactive_file 104857600\nactive_file 5\n",
    "job.slice/run.scope/memory.max": "max", "job.slice/run.scope/memory.current": "5",
}


def test_a_cgroup_v2_limit_is_honoured(fake, tmp_path, corpus, capsys):
    fake("0::/job.slice/run.scope\n", CONTAINER_V2)
    room = GIB - 800 * 2**20 + 100 * 2**20  # the inactive page cache is reclaimable
    assert memory_limits() == {"this machine's free memory": 64 * GIB,
                               "the cgroup memory limit": room}
    status = main(pretrain_args(corpus, tmp_path / "run", 64, 64))
    err = capsys.readouterr().err
    assert status == 1 and "under the cgroup memory limit" in err
    cfg = GPTConfig.preset("tiny", vocab_size=300)
    fits = [m for m in (1, 2, 4, 8, 16, 32) if sum(estimate_memory(
        cfg, m, cfg.n_ctx, 64, blas_threads()).values()) <= 0.9 * room]
    assert f"use --micro-batch-size {fits[-1]}:" in err
    assert not (tmp_path / "run").exists()


def test_a_cgroup_v1_limit_is_honoured(fake):
    fake("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/\n", {
        "memory/docker/abc/memory.limit_in_bytes": str(10 * GIB),
        "memory/docker/abc/memory.usage_in_bytes": str(GIB),
        "memory/docker/abc/memory.stat": "inactive_file 7\ntotal_inactive_file 0\n",
        "memory/memory.limit_in_bytes": "9223372036854771712",  # v1's "no limit"
        "memory/memory.usage_in_bytes": str(3 * GIB),
    })
    assert memory_limits()["the cgroup memory limit"] == 9 * GIB
    with pytest.raises(ValueError, match="under the cgroup memory limit; use --micro-batch"):
        check_fits(GPTConfig.preset("gpt1"), 64, 64)


@pytest.mark.parametrize("cgroup, files", [
    ("0::/\n", {}),  # the root cgroup: no memory.max there
    ("0::/a\n", {"a/memory.max": "max", "a/memory.current": "1"}),
    ("4:memory:/x\n", {"memory/x/memory.limit_in_bytes": "9223372036854771712",
                       "memory/x/memory.usage_in_bytes": "1"}),
    ("garbage\n0::/a\n", {"a/memory.max": "lots", "a/memory.current": "1"}),
])  # fmt: skip
def test_no_cgroup_limit_means_only_the_machine_counts(fake, cgroup, files):
    fake(cgroup, files, mem_available=3 * GIB)
    assert memory_limits() == {"this machine's free memory": 3 * GIB}
