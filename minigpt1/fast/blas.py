"""NumPy's BLAS threads: read and set NumPy's OpenBLAS thread count while running, and share
a machine's cores among the MPI ranks it runs.

Both exist only for speed. Importing minigpt1 changes no thread count: the command line calls
`share_cores_among_local_ranks` (through fast/process.py), and the row-shard threads of
evaluation (batch_threads.py) switch BLAS to one thread only while they run.

An MPI launcher starts several Python processes on one machine, and each one's BLAS would
start a thread per core: 2 ranks on 2 cores would run 4 threads and thrash. Under a launcher
(mpiexec of MPICH or Open MPI), each rank gets cores / (ranks on this machine) threads, unless
OMP_NUM_THREADS or its kin are already set.
"""

import ctypes
import glob
import itertools
import os
from functools import cache

import numpy

LOCAL_RANK_COUNTS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")  # MPICH (Hydra), Open MPI
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
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
        self.core = self._core(library)

    @classmethod
    def _core(cls, library):
        """The kernels this CPU runs ("Haswell", "SkylakeX", ...; OPENBLAS_CORETYPE picks
        them by hand), or None when the build does not say."""
        try:
            corename = cls._function(library, "get_corename")
        except AttributeError:
            return None
        corename.restype = ctypes.c_char_p
        return corename().decode()

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


def kernels(environ=os.environ):
    """Which OpenBLAS kernels NumPy's products run, in words, for the lines that print a matmul
    speed ("" without OpenBLAS, or when the build does not say). OPENBLAS_CORETYPE can pin
    older kernels than the CPU could run: on an AVX-512 CPU pinned to Haswell, the float32
    peak halves."""
    blas = openblas()
    if blas is None or blas.core is None:
        return ""
    pinned = environ.get("OPENBLAS_CORETYPE")
    return f"OpenBLAS {blas.core} kernels, " + (
        f"pinned by OPENBLAS_CORETYPE={pinned}" if pinned else "chosen for this CPU")


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def share_cores_among_local_ranks(environ=os.environ):
    """Give a rank launched by mpiexec its share of this machine's cores; returns the thread
    count, or None when not under a launcher or when the user chose a count.

    The variables are set for the processes this one starts; NumPy's OpenBLAS, loaded
    already, is switched directly.
    """
    counts = [environ[name] for name in LOCAL_RANK_COUNTS if environ.get(name, "").isdigit()]
    if not counts or any(name in environ for name in THREAD_VARIABLES):
        return None
    threads = max(1, usable_cores() // max(1, int(counts[0])))
    for name in THREAD_VARIABLES:
        environ[name] = str(threads)
    if environ is os.environ and (blas := openblas()) is not None:
        blas.set(threads)
    return threads
