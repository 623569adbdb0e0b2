"""A lone shard's matrix products in fixed blocks (minigpt1/fast/products.py) beside OpenBLAS.

    python benchmarks/product_blocks.py                 # GPT-1: one layer's products and the head's
    python benchmarks/product_blocks.py --rows 256 --repeats 9

A training step of one sequence cuts each product into 4 blocks dealt out to the cores, so
that its numbers do not depend on the core count. This times that, for the 15 products of
one GPT-1 training step's layer and of its tied head (forward, and the backward's dx and dW),
against the same product on OpenBLAS's own threads (as fast as this machine multiplies, but
not the same bits on every core count) and on one thread. Medians of alternating repeats.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt1 import GPTConfig  # noqa: E402
from minigpt1.fast.batch_threads import (  # noqa: E402
    blas_threads,
    products_in_blocks,
    single_threaded_blas,
)
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.fast.products import product_in_blocks  # noqa: E402

tune_process()


def step_products(rows, C, V, rng):
    """(name, a, b) for the products of one layer (qkv, proj, fc, fc2) and of the head."""
    products = []
    for name, (n_in, n_out) in {"qkv": (C, 3 * C), "proj": (C, C), "fc": (C, 4 * C),
                                "fc2": (4 * C, C), "head": (C, V)}.items():
        x, w, dy = (rng.standard_normal(shape, dtype=np.float32)
                    for shape in ((rows, n_in), (n_in, n_out), (rows, n_out)))
        products += [(f"{name} forward", x, w), (f"{name} dx", dy, w.T), (f"{name} dW", x.T, dy)]
    return products


def median_times(fns, args, repeats):
    """Median seconds of each fn(*args), the fns run in turns."""
    times = [[] for _ in fns]
    for _ in range(repeats + 1):  # the first round warms up
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(*args)
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t[1:]) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="tokens in the shard (default 512)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cfg = GPTConfig.preset("gpt1")
    threads = blas_threads()
    if threads == 1:
        sys.exit("one BLAS thread (or a BLAS whose threads cannot be switched): nothing to compare")

    def blocks(a, b):
        with single_threaded_blas(), products_in_blocks(threads):
            return product_in_blocks(a, b)

    def one_thread(a, b):
        with single_threaded_blas():
            return a @ b

    print(f"{args.rows} rows, C={cfg.n_embd}, V={cfg.vocab_size}, {threads} threads; "
          f"ms per product (GFLOP/s)")
    print(f"{'product':<14}{'M x K x N':>20}{'blocks':>16}{'OpenBLAS':>16}{'one thread':>16}")
    totals = np.zeros(3)
    for name, a, b in step_products(args.rows, cfg.n_embd, cfg.vocab_size,
                                    np.random.default_rng(0)):
        blocks_time, one_time = median_times([blocks, one_thread], (a, b), args.repeats)
        # OpenBLAS's threads spin for a while after a product and would hold a core while
        # blocks run: they are timed apart, and idle a moment before the next product's blocks
        [openblas_time] = median_times([np.matmul], (a, b), args.repeats)
        time.sleep(0.5)
        seconds = blocks_time, openblas_time, one_time
        totals += seconds
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
        shape = f"{a.shape[0]} x {a.shape[1]} x {b.shape[1]}"
        print(f"{name:<14}{shape:>20}"
              + "".join(f"{1e3 * s:>9.2f} ({flops / s / 1e9:>3.0f})" for s in seconds))
    print(f"{'total':<34}" + "".join(f"{1e3 * s:>16.1f}" for s in totals))
    print(f"blocks / OpenBLAS: {totals[0] / totals[1]:.2f}; "
          f"blocks / one thread: {totals[0] / totals[2]:.2f}")


if __name__ == "__main__":
    main()
