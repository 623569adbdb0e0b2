"""Spreading a batch's rows over the CPU's cores, for passes without gradients.

NumPy runs every element-wise operation (exp, tanh, the passes of LayerNorm and softmax) on
one core; only the matrix products use BLAS's threads. In a forward pass the sequences of a
batch never meet, so its rows can run in one thread per core instead, each thread calling a
single-threaded BLAS: NumPy releases the GIL inside its loops, so every pass then uses every
core. On 2 cores evaluation got 1.2 to 1.4 times faster with it and three smaller changes
(docs/speed.md).
Training does not split its batch this way: its dropout masks would then depend on how many
cores the machine has.

It needs a BLAS whose thread count can be changed while running: two threads that each call
a multi-threaded BLAS fight over its thread pool and run slower than one. NumPy's own
OpenBLAS (the wheels for Linux, Windows and Intel Macs) can. With any other BLAS, an OpenMP
build of OpenBLAS, or BLAS limited to one thread (OMP_NUM_THREADS=1, or ranks sharing a
machine under mpiexec), `map_row_shards` simply runs its function once, on every row.
"""

import ctypes
import glob
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache

import numpy

MIN_SHARD_ELEMENTS = 1 << 15  # rows x tokens x channels a shard needs to pay for its thread


OPENMP = 2  # what openblas_get_parallel() returns for a build on OpenMP threads


class OpenBLAS:
    """One OpenBLAS library, its thread count read and set through ctypes."""

    def __init__(self, path):
        library = ctypes.CDLL(path)
        self.path = path
        self.get, self.set, parallel = (
            self._function(library, name)
            for name in ("get_num_threads", "set_num_threads", "get_parallel"))
        if parallel() == OPENMP:  # its threads follow each caller's OpenMP setting, not set()
            raise OSError(f"{path} is an OpenMP build")

    @staticmethod
    def _function(library, name):
        """openblas_<name>, under the prefix and suffix of this build (NumPy's: scipy_, 64_)."""
        for prefix, suffix in itertools.product(("scipy_openblas_", "openblas_"), ("64_", "")):
            if hasattr(library, f"{prefix}{name}{suffix}"):
                return getattr(library, f"{prefix}{name}{suffix}")
        raise AttributeError(f"no openblas_{name}")


def numpy_openblas_candidates():
    """Paths that may be NumPy's OpenBLAS, most likely first.

    The wheels bundle a private copy beside the numpy package; a NumPy built against the
    system's OpenBLAS has it mapped into this process (Linux). Private copies of other
    wheels (SciPy's `scipy.libs`, ...) are mapped too, but setting their thread count would
    not change NumPy's, so they are left out.
    """
    site = os.path.dirname(os.path.dirname(numpy.__file__))
    paths = []
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        paths += sorted(glob.glob(os.path.join(site, folder, "*openblas*")))
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as maps:
            mapped = [line.split()[-1] for line in maps if "openblas" in line.lower()]
        paths += [path for path in mapped
                  if not os.path.basename(os.path.dirname(path)).endswith((".libs", ".dylibs"))]
    return list(dict.fromkeys(paths))


@cache
def openblas():
    """NumPy's OpenBLAS, or None when NumPy uses another BLAS (Accelerate, MKL, ...)."""
    for path in numpy_openblas_candidates():
        try:
            return OpenBLAS(path)
        except (OSError, AttributeError):
            continue
    return None


_pools = {}  # process id -> its thread pool
_switching = threading.Lock()  # one split at a time: each sets the process-wide BLAS count


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
    with _switching:
        threads = blas.get()
        blas.set(1)
        futures = [pool().submit(fn, rows) for rows in shards]
        try:
            wait(futures)
        finally:  # on Ctrl-C too: no shard may still run when BLAS gets its threads back
            for future in futures:
                future.cancel()
            wait(futures)
            blas.set(threads)
    return [future.result() for future in futures]
