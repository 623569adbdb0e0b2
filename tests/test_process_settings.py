"""Importing minigpt1 changes nothing process-wide; `tune_process()` (what the command line and
the benchmarks call first) sets the allocator and shares the cores among MPI ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt1.fast import blas, process

ROOT = Path(__file__).resolve().parents[1]
THREADS = blas.THREAD_VARIABLES

# Run in a fresh interpreter: records every C library opened through ctypes while minigpt1 is
# imported (mallopt needs libc), then the thread variables and NumPy's OpenBLAS thread count.
PROBE = """
import ctypes, json, os, sys
opened = []
real_cdll = ctypes.CDLL
def recording_cdll(name, *args, **kwargs):
    opened.append(str(name))
    return real_cdll(name, *args, **kwargs)
ctypes.CDLL = recording_cdll
import minigpt1, minigpt1.cli, minigpt1.jobs.pretrain, minigpt1.jobs.finetune
imported = list(opened)
if sys.argv[1] == "tune":
    from minigpt1.fast.process import tune_process
    tune_process()
from minigpt1.fast.blas import THREAD_VARIABLES, openblas
print(json.dumps({"imported": imported, "opened": opened,
                  "threads": openblas().get() if openblas() else None,
                  "env": {name: os.environ.get(name) for name in THREAD_VARIABLES}}))
"""


def probe(mode, **env):
    clean = {k: v for k, v in os.environ.items() if k not in THREADS}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                          text=True, env={**clean, "PYTHONPATH": str(ROOT), **env}, check=True)
    return json.loads(done.stdout)


def test_importing_minigpt1_under_mpiexec_changes_no_setting():
    seen = probe("import", MPI_LOCALNRANKS="2")
    assert seen["env"] == dict.fromkeys(THREADS), seen["env"]
    assert seen["threads"] == probe("import")["threads"]  # not a rank's share of the cores
    assert seen["imported"] == [], seen["imported"]  # no C library: no mallopt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and OpenBLAS: Linux")
def test_tune_process_shares_the_cores_among_local_ranks():
    seen = probe("tune", MPI_LOCALNRANKS="2")
    share = str(max(1, blas.usable_cores() // 2))
    assert seen["env"] == dict.fromkeys(THREADS, share)
    if seen["threads"] is not None:  # NumPy's own OpenBLAS: switched while running
        assert seen["threads"] == int(share)
    assert any("libc" in name for name in seen["opened"])  # mallopt was called


def test_freed_memory_is_kept_for_reuse_on_linux():
    assert process.keep_freed_memory() == sys.platform.startswith("linux")


def test_ranks_on_one_machine_share_its_cores(monkeypatch):
    monkeypatch.setattr(blas, "usable_cores", lambda: 8)
    environ = {"MPI_LOCALNRANKS": "2"}
    assert blas.share_cores_among_local_ranks(environ) == 4
    assert environ["OMP_NUM_THREADS"] == environ["OPENBLAS_NUM_THREADS"] == "4"
    assert blas.share_cores_among_local_ranks({"OMPI_COMM_WORLD_LOCAL_SIZE": "16"}) == 1
    chosen = {"MPI_LOCALNRANKS": "2", "OMP_NUM_THREADS": "3"}
    assert blas.share_cores_among_local_ranks(chosen) is None  # the user's choice stays
    assert chosen == {"MPI_LOCALNRANKS": "2", "OMP_NUM_THREADS": "3"}
    assert blas.share_cores_among_local_ranks({}) is None  # not under a launcher
