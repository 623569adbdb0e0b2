"""Process-wide settings that make training faster. Importing minigpt1 changes none of them:
the command line and the benchmarks opt in with `tune_process()`; a library user may too.
"""

import ctypes
import sys

from .blas import share_cores_among_local_ranks


def tune_process():
    """What `python -m minigpt1` does first: give an MPI rank its share of the cores, and let
    glibc keep freed memory for reuse. Returns what the second did (True where it applies)."""
    share_cores_among_local_ranks()
    return keep_freed_memory()


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of handing it back to the system.

    A training step allocates and frees the same large arrays over and over. By default glibc
    serves every block over 128 KiB with a fresh mmap and unmaps it when freed, so each step
    pays again for the kernel to hand out and zero every page it touches: a third of a tiny
    model's step time on a 2-core VM. Raising the mmap and trim thresholds lets freed blocks be
    reused, warm. The process keeps its peak memory instead of shrinking between steps.
    One arena for every thread: the threads that share a batch's rows (batch_threads.py) then
    draw from the same warm memory, not from fresh arenas of their own.
    Linux with glibc only; elsewhere (and if it fails) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from <malloc.h>
    settings = ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 1 << 30), (M_ARENA_MAX, 1))
    return all([libc.mallopt(option, value) for option, value in settings])
