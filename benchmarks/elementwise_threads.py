"""How much a second core speeds up NumPy's element-wise passes: threads against processes.

    python benchmarks/elementwise_threads.py [--threads 2] [--seconds 0.5]

A training step runs its element-wise passes (GELU, LayerNorm, softmax, AdamW) in Python
threads, one per core (docs/speed.md). NumPy lets go of the GIL inside each pass, but every
call takes it back at its start and its end. This runs one pass, over arrays of several sizes,
as often as fits in a time budget: in one thread; in N threads of one process, each on arrays
of its own; and in N processes, which share no GIL. The processes show what the cores and the
memory allow; the threads what is left of it once calls queue for the GIL. Each pass writes
into an array made beforehand (`out=`), as minigpt1's fast paths do.
"""

import argparse
import multiprocessing
import threading
import time

import numpy as np

SIZES = [1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22]  # float32 elements per call
PASSES = {
    "multiply": lambda a, b: np.multiply(b, b, out=a),
    "tanh": lambda a, b: np.tanh(b, out=a),
}


def passes_per_second(name, n, seconds, start=None):
    """Calls of pass `name` over n elements per second, on arrays made by this worker; every
    worker starts its clock at `start` (a barrier) when there are several."""
    a, b = (np.random.default_rng(i).random(n, dtype=np.float32) * 0.5 + 0.5 for i in range(2))
    run = PASSES[name]
    run(a, b)  # first touch
    if start is not None:
        start.wait()
    calls, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for _ in range(16):
            run(a, b)
        calls += 16
    return calls / (time.perf_counter() - begin)


def in_threads(name, n, seconds, workers):
    start, rates = threading.Barrier(workers), []
    threads = [threading.Thread(target=lambda: rates.append(
        passes_per_second(name, n, seconds, start))) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def _process_worker(name, n, seconds, start, results):
    results.put(passes_per_second(name, n, seconds, start))


def in_processes(name, n, seconds, workers):
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_process_worker, args=(name, n, seconds, start, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    rates = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads and processes (2)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement (0.5)")
    args = parser.parse_args()
    if args.threads < 2 or args.seconds <= 0:
        parser.error("--threads must be at least 2 and --seconds positive")
    N = args.threads
    print(f"{'pass':>8} {'elements':>9} {'us/call':>8} {'1 thread':>12}  "
          f"{N} threads  {N} processes   (G elements/s; x = times one thread)")
    for name in PASSES:
        for n in SIZES:
            one = passes_per_second(name, n, args.seconds)
            threads = in_threads(name, n, args.seconds, N)
            processes = in_processes(name, n, args.seconds, N)
            print(f"{name:>8} {n:>9,} {1e6 / one:>8.1f} {one * n / 1e9:>12.2f}  "
                  f"{threads * n / 1e9:>6.2f} x{threads / one:.2f}  "
                  f"{processes * n / 1e9:>6.2f} x{processes / one:.2f}", flush=True)


if __name__ == "__main__":
    main()
