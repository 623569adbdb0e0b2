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

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from .blas import openblas

MIN_SHARD_ELEMENTS = 1 << 15  # rows x tokens x channels a shard needs to pay for its thread


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
