"""Spreading a batch's rows over the CPU's cores.

NumPy runs every element-wise operation (exp, tanh, the passes of LayerNorm and softmax) on
one core; only the matrix products use BLAS's threads. The sequences of a batch never meet
before the gradients are summed, so its rows can run in one thread per core instead, each
thread calling a single-threaded BLAS: NumPy releases the GIL inside its loops, so every pass
then uses every core (docs/speed.md).

- `map_row_shards` (evaluation) cuts the rows into up to 4 shares fixed by the rows and their
  work, never by the core count, run at most one per thread at a time: every share then makes
  the same products on any machine and rank layout (how OpenBLAS blocks a product can depend
  on its number of rows, and so can its last bits), and the loss is the same on any of them.
- `run_in_order` (training) runs a list of shards fixed by the batch, never by the core count
  (training/update.py), at most one per thread at a time, and hands their results to the
  caller in the list's order: the gradients are then summed in the same order on any machine.

It needs a BLAS whose thread count can be changed while running: two threads that each call
a multi-threaded BLAS fight over its thread pool and run slower than one. NumPy's own
OpenBLAS (the wheels for Linux, Windows and Intel Macs) can. With BLAS limited to one thread
(OMP_NUM_THREADS=1, or ranks sharing a machine under mpiexec) `map_row_shards` runs the same
shares one after another; with any other BLAS, or an OpenMP build of OpenBLAS, it runs its
function once, on every row.
"""

import functools
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import numpy

from .blas import openblas

MIN_SHARD_ELEMENTS = 1 << 15  # rows x tokens x channels a shard needs to pay for its thread
ROW_PARTS = 4  # a one-row shard's work is cut in this many parts: for 1, 2 or 4 cores alike


_pools = {}  # process id -> its thread pool
_switching = threading.RLock()  # one split at a time: each sets the process-wide BLAS count
_parts = threading.local()  # .threads: how many a thread's fixed parts may use (in_fixed_parts)


def pool():
    """This process's thread pool; a forked child makes its own (its parent's threads are gone)."""
    if os.getpid() not in _pools:
        _pools[os.getpid()] = ThreadPoolExecutor(thread_name_prefix="minigpt1-rows")
    return _pools[os.getpid()]


def row_shards(n_rows, elements_per_row):
    """Contiguous slices that split range(n_rows) into up to ROW_PARTS shares of at least
    MIN_SHARD_ELEMENTS each: the same on any number of cores.

    A single slice when there is no OpenBLAS to switch (the shares would run one after another
    on a BLAS that may split each product over its own threads).
    """
    if openblas() is None:
        return [slice(0, n_rows)]
    by_work = n_rows * elements_per_row // MIN_SHARD_ELEMENTS
    return fixed_parts(n_rows, min(ROW_PARTS, by_work))


def blas_threads():
    """How many threads NumPy's BLAS runs, which is how many shards may run at once; 1 when
    its count cannot be switched (the shards then run one after another)."""
    blas = openblas()
    return blas.get() if blas is not None else 1


@contextmanager
def single_threaded_blas():
    """BLAS on one thread inside the block (it affects every thread of the process), one
    switch at a time; its thread count back afterwards, on Ctrl-C too. Nothing to switch
    without OpenBLAS."""
    blas = openblas()
    if blas is None:
        yield
        return
    with _switching:
        threads = blas.get()
        blas.set(1)
        try:
            yield
        finally:
            blas.set(threads)


@contextmanager
def in_fixed_parts(threads):
    """While the block runs, the calling thread's work cuts itself in fixed parts, run on
    `threads` threads (1: one after another): its matrix products (products.py), attention's
    heads (attention.py) and GELU's rows (gelu.py)."""
    before = parts_threads()
    _parts.threads = threads
    try:
        yield
    finally:
        _parts.threads = before


def fixed_parts(size, parts=ROW_PARTS):
    """range(size) in `parts` contiguous slices (one per element when size is smaller, and at
    least one), the same on any number of cores."""
    parts = max(1, min(parts, size))
    return [slice(size * i // parts, size * (i + 1) // parts) for i in range(parts)]


def parts_threads():
    """The threads this thread's fixed parts may use now, or None: no parts (in_fixed_parts)."""
    return getattr(_parts, "threads", None)


def settle(futures):
    """Wait for every future, cancelling those not started: none may still run afterwards."""
    for future in futures:
        future.cancel()
    wait(futures)


def map_row_shards(fn, n_rows, elements_per_row):
    """[fn(rows) for rows in row_shards(...)], up to one shard per BLAS thread at a time.

    BLAS runs one thread throughout, also for rows too few to split: how OpenBLAS splits a
    product over its own threads can change its last bits, and a rank under mpiexec runs one
    BLAS thread, so the numbers are the same on any core count and any rank layout.
    A lone sequence is the exception: its products keep BLAS's threads, the only way they
    run on every core. fn must only read shared state.
    """
    shards = row_shards(n_rows, elements_per_row)
    if n_rows == 1:
        return [fn(shards[0])]
    results, threads = [], blas_threads()
    with single_threaded_blas():
        map_at_most(fn, shards, min(threads, len(shards)), results.append)
    return results


def concatenated_row_shards(fn, n_rows, elements_per_row, device):
    """fn over every row, its results joined along their first axis: on the CPU the shares of
    map_row_shards, on a GPU fn(slice(None)) at once."""
    if device != "cpu":
        return fn(slice(None))
    return numpy.concatenate(map_row_shards(fn, n_rows, elements_per_row))


def run_in_order(fn, items, consume):
    """consume(fn(item)) for each item, in the items' order, on the calling thread.

    BLAS runs one thread throughout. fn runs on up to blas_threads() items at once, each in
    a thread of the pool; fn must only read shared state. An item of one row (a range of
    one sequence or example) computes in fixed parts, so that its numbers are the same
    whether it runs alone or beside others, on any number of ranks: alone, in the caller,
    its parts are dealt out to the threads; beside others, they run one after another in its
    own thread.
    """
    threads = blas_threads()
    with single_threaded_blas():
        if len(items) == 1 and len(items[0]) == 1:
            with in_fixed_parts(threads):
                consume(fn(items[0]))
        else:
            map_at_most(functools.partial(in_parts_if_one_row, fn), items, threads, consume)


def in_parts_if_one_row(fn, item):
    """fn(item), in fixed parts one after another when the item holds one row."""
    if len(item) != 1:
        return fn(item)
    with in_fixed_parts(1):
        return fn(item)


def map_dealt(fn, items, threads):
    """[fn(item) for item in items], the items dealt out in turn to `threads` threads, the
    caller being the first, each running its share in order.

    One hand-off per thread, not one per item: waking a thread that sleeps on an idle core
    costs 0.1 to 1 ms on a VM, as much as a small product takes.
    """
    results = [None] * len(items)

    def run_share(first):
        for i in range(first, len(items), threads):
            results[i] = fn(items[i])

    others = [pool().submit(run_share, first) for first in range(1, min(threads, len(items)))]
    try:
        run_share(0)
    except BaseException:
        settle(others)
        raise
    for other in others:
        other.result()  # its error, if it raised one
    return results


def map_at_most(fn, items, threads, consume):
    """consume(fn(item)) for each item in order; fn on up to `threads` items at once (in the
    caller when threads is 1)."""
    if threads == 1:
        for item in items:
            consume(fn(item))
        return
    running = deque(pool().submit(fn, item) for item in items[:threads])
    waiting = deque(items[threads:])
    try:
        while running:
            result = running.popleft().result()
            if waiting:  # keep every thread busy while the oldest result is consumed
                running.append(pool().submit(fn, waiting.popleft()))
            consume(result)
    finally:
        settle(running)
