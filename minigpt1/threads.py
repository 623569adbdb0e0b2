"""Spreading a batch's rows over the CPU's cores, for passes without gradients.

NumPy runs every element-wise operation (exp, tanh, the passes of LayerNorm and softmax) on
one core; only the matrix products use BLAS's threads. In a forward pass the sequences of a
batch never meet, so its rows can run in one thread per core instead, each thread calling a
single-threaded BLAS: NumPy releases the GIL inside its loops, so every pass then uses every
core. On 2 cores this makes evaluation 1.2 to 1.5 times faster (bench-small and tiny sizes).
Training does not split its batch this way: its dropout masks would then depend on how many
cores the machine has.

It needs a BLAS whose thread count can be changed while running: two threads that each call
a multi-threaded BLAS fight over its thread pool and run slower than one. NumPy's own
OpenBLAS (the wheels for Linux, Windows and Intel Macs) can; with any other BLAS, or with
BLAS limited to one thread (OMP_NUM_THREADS=1, or ranks sharing a machine under mpiexec),
`map_row_shards` simply runs its function once, on every row.
"""

import ctypes
import glob
import os
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache

import numpy

MIN_SHARD_ELEMENTS = 1 << 15  # rows x tokens x channels a shard needs to pay for its thread


class OpenBLAS:
    """The thread count of the OpenBLAS library NumPy has loaded, read and set through ctypes."""

    NAMES = [f"{prefix}{{}}_num_threads{suffix}"
             for prefix in ("scipy_openblas_", "openblas_") for suffix in ("64_", "")]

    def __init__(self, library):
        self.get, self.set = (self._function(library, verb) for verb in ("get", "set"))

    @classmethod
    def _function(cls, library, verb):
        for name in cls.NAMES:
            if hasattr(library, name.format(verb)):
                return getattr(library, name.format(verb))
        raise AttributeError(f"no openblas_{verb}_num_threads")


def loaded_library_paths():
    """Paths of the shared libraries that may be NumPy's OpenBLAS."""
    paths = []
    if os.path.exists("/proc/self/maps"):  # Linux: every library this process has mapped
        with open("/proc/self/maps") as maps:
            paths += [line.split()[-1] for line in maps if "openblas" in line.lower()]
    site = os.path.dirname(os.path.dirname(numpy.__file__))  # the wheels' bundled copies:
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        paths += glob.glob(os.path.join(site, folder, "*openblas*"))
    return list(dict.fromkeys(paths))


@cache
def openblas():
    """NumPy's OpenBLAS, or None when NumPy uses another BLAS (Accelerate, MKL, ...)."""
    for path in loaded_library_paths():
        try:
            return OpenBLAS(ctypes.CDLL(path))
        except (OSError, AttributeError):
            continue
    return None


_pools = {}  # process id -> its thread pool


def pool():
    """This process's thread pool; a forked child makes its own (its parent's threads are gone)."""
    if os.getpid() not in _pools:
        _pools[os.getpid()] = ThreadPoolExecutor(thread_name_prefix="minigpt1-rows")
    return _pools[os.getpid()]


def row_shards(n_rows, elements_per_row):
    """Contiguous slices that split range(n_rows) into one share per BLAS thread.

    A single slice when there is no OpenBLAS to switch, one thread, or too little work.
    """
    blas = openblas()
    threads = blas.get() if blas is not None else 1
    by_work = n_rows * elements_per_row // MIN_SHARD_ELEMENTS
    workers = max(1, min(threads, n_rows, by_work))
    return [slice(n_rows * i // workers, n_rows * (i + 1) // workers) for i in range(workers)]


def map_row_shards(fn, n_rows, elements_per_row):
    """[fn(rows) for rows in row_shards(...)], the shards run at once in threads.

    fn must only read shared state. Meanwhile BLAS runs one thread per call (it affects every
    thread of the process), and it gets its thread count back afterwards.
    """
    shards = row_shards(n_rows, elements_per_row)
    if len(shards) == 1:
        return [fn(shards[0])]
    blas = openblas()
    threads = blas.get()
    blas.set(1)
    try:
        futures = [pool().submit(fn, rows) for rows in shards]
        wait(futures)  # every shard ends before BLAS gets its threads back
    finally:
        blas.set(threads)
    return [future.result() for future in futures]
