"""A training step's matrix products alone, run as the step runs them, beside OpenBLAS's threads.

    python benchmarks/step_products.py                    # gpt1: one sequence, products in blocks
    python benchmarks/step_products.py --preset tiny      # 16 sequences in 2 shards, 1 per thread

How fast could a step be if nothing but its matrix products took time? A training step runs
them in one of two ways, both of which keep its numbers the same on any number of cores
(docs/speed.md): a batch of several sequences in shards, one shard per thread, each thread
calling single-threaded BLAS; a batch of one sequence as one shard whose products are each
cut into 4 fixed blocks, dealt out to the threads (minigpt1/fast/products.py). For one layer
and for the tied head, this times each product (forward, and the backward's dx and dW) over
the whole batch in the step's way, beside the same products on OpenBLAS's own threads (as
fast as this machine multiplies, but not the same bits on every core count) and on one
thread. The step's total counts the layer's products once per layer. Attention's batched
products are left out; the share of the step's FLOPs they leave is printed.
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare_torch import PRESETS, time_alternately  # noqa: E402

from minigpt1 import GPTConfig  # noqa: E402
from minigpt1.fast.batch_threads import (  # noqa: E402
    blas_threads,
    in_fixed_parts,
    map_at_most,
    single_threaded_blas,
)
from minigpt1.fast.blas import kernels  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.fast.products import product_in_blocks  # noqa: E402
from minigpt1.training.estimate import flops_per_token, matmul_peak  # noqa: E402
from minigpt1.training.update import batch_shards  # noqa: E402

tune_process()


def step_products(cfg, shard_rows, rng):
    """(name, [(a, b) for each shard]) for the products of one layer and of the head; the
    shards share the weights, as in a step, and each has its own activations."""
    C = cfg.n_embd
    products = []
    for name, (n_in, n_out) in {"qkv": (C, 3 * C), "proj": (C, C), "fc": (C, 4 * C),
                                "fc2": (4 * C, C), "head": (C, cfg.vocab_size)}.items():
        w = rng.standard_normal((n_in, n_out), dtype=np.float32)
        shards = [(rng.standard_normal((rows, n_in), dtype=np.float32),
                   rng.standard_normal((rows, n_out), dtype=np.float32)) for rows in shard_rows]
        products += [(f"{name} forward", [(x, w) for x, _ in shards]),
                     (f"{name} dx", [(dy, w.T) for _, dy in shards]),
                     (f"{name} dW", [(x.T, dy) for x, dy in shards])]
    return products


INNER = 8  # repeats of a product inside one timed call, as the step runs many in a row


def as_the_step_runs(pairs, threads):
    """Every shard's product INNER times, as a training step runs them: each shard in a
    thread of its own for a whole step (batch_threads.run_in_order), or, for a step's only
    shard of one sequence, each product dealt out in blocks (products.py)."""
    with single_threaded_blas():
        if len(pairs) == 1:
            with in_fixed_parts(threads):
                for _ in range(INNER):
                    product_in_blocks(*pairs[0])
        else:
            map_at_most(lambda pair: [pair[0] @ pair[1] for _ in range(INNER)], pairs, threads,
                        lambda _: None)


def on_openblas_threads(pairs, threads):
    for _ in range(INNER):
        for a, b in pairs:
            a @ b


def on_one_thread(pairs, threads):
    with single_threaded_blas():
        on_openblas_threads(pairs, threads)


def time_product(pairs, threads, repeats):
    """Seconds of the step's way, OpenBLAS's threads and one thread, for one product
    (compare_torch's alternating timing, with no pause between turns)."""
    step_way, one_thread = (functools.partial(fn, pairs, threads)
                            for fn in (as_the_step_runs, on_one_thread))
    step_time, one_time = time_alternately([step_way, one_thread], 1, repeats, pause=0)
    # OpenBLAS's threads spin for a while after a product and would hold a core while the
    # step's way runs: they are timed apart, and idle a moment before the next product
    [openblas_time] = time_alternately([functools.partial(on_openblas_threads, pairs, threads)],
                                       1, repeats, pause=0)
    time.sleep(0.5)
    return np.array([step_time, openblas_time, one_time]) / INNER


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt1", choices=list(PRESETS),
                        help="a preset of benchmarks/compare_torch.py, with its batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    overrides, batch = PRESETS[args.preset]
    cfg = GPTConfig.preset("gpt1", **overrides)
    threads = blas_threads()
    if threads == 1:
        sys.exit("one BLAS thread (or a BLAS whose threads cannot be switched): nothing to compare")
    shard_rows = [len(shard) * cfg.n_ctx for shard in batch_shards(range(batch), batch)]
    peak = max(matmul_peak() for _ in range(3))
    way = "blocks" if len(shard_rows) == 1 else "shards"
    print(f"{args.preset}: batch {batch} x {cfg.n_ctx} in {len(shard_rows)} shard(s) of "
          f"{shard_rows[0]} rows, C={cfg.n_embd}, V={cfg.vocab_size}, {threads} threads; "
          f"float32 matmul peak {peak:.0f} GFLOP/s ({kernels()})")
    print(f"ms per product over the batch (GFLOP/s); '{way}' is the training step's way")
    print(f"{'product':<14}{'M x K x N':>20}{way:>16}{'OpenBLAS':>16}{'one thread':>16}")
    step = np.zeros(3)
    flops = 0
    for name, pairs in step_products(cfg, shard_rows, np.random.default_rng(0)):
        seconds = time_product(pairs, threads, args.repeats)
        a, b = pairs[0]
        product_flops = 2 * b.shape[1] * sum(a.shape[0] * a.shape[1] for a, _ in pairs)
        times = 1 if name.startswith("head") else cfg.n_layer
        step += times * seconds
        flops += times * product_flops
        shape = f"{a.shape[0]} x {a.shape[1]} x {b.shape[1]}"
        print(f"{name:<14}{shape:>20}"
              + "".join(f"{1e3 * s:>9.2f} ({product_flops / s / 1e9:>3.0f})" for s in seconds))
    counted = flops_per_token(cfg).training * batch * cfg.n_ctx
    print(f"a step's products ({cfg.n_layer} layers and the head), ms: "
          + ", ".join(f"{label} {1e3 * s:,.0f} (MFU {flops / s / 1e9 / peak:.0%})"
                      for label, s in zip((way, "OpenBLAS", "one thread"), step, strict=True)))
    print(f"{way} / OpenBLAS: {step[0] / step[1]:.2f}; these products are "
          f"{flops / counted:.0%} of the step's FLOPs as `python -m minigpt1 estimate` counts "
          f"them (the rest: attention's)")


if __name__ == "__main__":
    main()
