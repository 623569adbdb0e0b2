"""Ranks that share a machine share its cores.

An MPI launcher starts several Python processes on one machine, and each one's BLAS would
start a thread per core: 2 ranks on 2 cores would run 4 threads and thrash. Under a launcher
(mpiexec of MPICH or Open MPI), each rank gets cores / (ranks on this machine) threads, unless
OMP_NUM_THREADS or its kin are already set. BLAS reads these variables once, when NumPy loads
it, so this module runs first (minigpt1/__init__.py imports it before anything else).
"""

import os

LOCAL_RANK_COUNTS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")  # MPICH (Hydra), Open MPI
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def share_cores_among_local_ranks(environ=os.environ):
    """Set the BLAS thread count of a rank launched by mpiexec; returns it, or None when
    not under a launcher or when the user chose a count."""
    counts = [environ[name] for name in LOCAL_RANK_COUNTS if environ.get(name, "").isdigit()]
    if not counts or any(name in environ for name in THREAD_VARIABLES):
        return None
    threads = max(1, usable_cores() // max(1, int(counts[0])))
    for name in THREAD_VARIABLES:
        environ[name] = str(threads)
    return threads


share_cores_among_local_ranks()
