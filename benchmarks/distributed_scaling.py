"""Data-parallel scaling: 1 process against 2 MPI ranks here, and GPT-1 on N GPUs on paper.

    python benchmarks/distributed_scaling.py                     # measure (minutes), then project
    python benchmarks/distributed_scaling.py --projection-only   # the projection alone, no MPI
    python benchmarks/distributed_scaling.py --steps 2 --rounds 1 --preset tiny   # a smoke run

Part 1 times whole updates (train_step: forward + backward + all-reduce + clip + AdamW) of the
same global batch of --batch sequences in three configurations: 1 rank with 2 BLAS threads (the
baseline: one process on both cores), 1 rank with 1 thread, and 2 ranks (`mpiexec -n 2`) with
1 thread each, each rank taking --batch / 2 sequences in one micro-batch. Every configuration
runs in fresh processes whose thread count is set in their environment before NumPy loads BLAS;
the configurations take turns for --rounds rounds and the table gives each one's medians (this
machine is shared and noisy).

    speedup     = baseline s/step / this s/step                     (baseline: 1 rank x 2 threads)
    efficiency  = (1 rank x 1 thread s/step) / (cores used x this s/step): the share of each
                  core's speed that survives when cores are added (2 ranks at 100% would be
                  twice as fast as one process on one core)
    bus GB/s    = 2 (N - 1) / N x gradient bytes / all-reduce seconds: NCCL's "bus bandwidth",
                  what each rank sends and receives in a ring all-reduce, per second

The all-reduce time is World.reduce_seconds: packing the gradients into one buffer, the transfer,
and waiting for the slower rank; the bandwidth derived from it is therefore a lower bound.

Part 2 projects GPT-1's pre-training (64 x 512 tokens per update, 100 epochs) on N GPUs:

    compute     = training FLOPs per token x 64 x 512 / (N x sustained FLOP/s of one GPU)
    all-reduce  = 2 (N - 1) / N x 4 bytes x parameters / bus bandwidth        (ring; 0 for N = 1)
    step        = compute + all-reduce      (minigpt1 reduces after the whole backward pass:
                                             nothing overlaps the transfer)
    efficiency  = compute on 1 GPU / (N x step)

once with an assumed GPU interconnect (--bus-gbps) and once with the bandwidth part 1 measured.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt1 import GPT, GPTConfig, parameter_count  # noqa: E402
from minigpt1.fast.blas import THREAD_VARIABLES, usable_cores  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.training.distributed import SINGLE, find_mpiexec, init_world  # noqa: E402
from minigpt1.training.estimate import flops_per_token  # noqa: E402
from minigpt1.training.lm_objective import TrainConfig, train_step  # noqa: E402
from minigpt1.training.optim import AdamW  # noqa: E402

tune_process()  # the allocator and BLAS settings of `python -m minigpt1` (fast/process.py)

# (label, ranks, BLAS threads per rank); the first is the baseline, the second the one-core run
CONFIGS = [("1 rank x 2 threads", 1, 2), ("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1)]
WARMUP = 2  # untimed updates: BLAS threads start, memory is first touched

# GPT-1's pre-training (paper section 4.1; ../shared/GPT1_REFERENCE.md section 2)
GPT1_BATCH, GPT1_SEQ, GPT1_EPOCHS = 64, 512, 100
# BooksCorpus's size is not in GPT1_REFERENCE.md: 984,846,357 words (Zhu et al. 2015, as counted
# by Bandy & Vincent 2021's datasheet), at the usual ~4/3 BPE tokens per English word
BOOKSCORPUS_TOKENS = round(984_846_357 * 4 / 3)  # ~1.31e9 tokens per epoch
GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)  # 64 GPUs take one sequence each: the batch splits no more


def ring_factor(n):
    """Bytes each rank sends (and receives) in a ring all-reduce, per byte of the buffer."""
    return 2 * (n - 1) / n


def bus_bandwidth(result):
    """Bytes/s each rank moved in the all-reduce of a worker's result (ring, bus bandwidth)."""
    return ring_factor(result["ranks"]) * result["reduce_bytes_per_step"] / \
        result["reduce_s_per_step"]


def worker(args):
    """One configuration, in this process (or these ranks): time train_step, and print one
    JSON line (init_world silences the other ranks' stdout)."""
    world = init_world("cpu", timeout=600) if args.worker == "mpi" else SINGLE
    cfg = GPTConfig.preset(args.preset)  # its vocabulary and dropout as they are
    T = cfg.n_ctx
    model = GPT(cfg, seed=0)
    optimizer = AdamW(model.params)
    world.share_weights(model, optimizer)  # rank 0's start everywhere, as pretrain does
    tcfg = TrainConfig(batch_size=args.batch, micro_batch_size=args.batch // world.size, seed=0)
    # random tokens: the speed of an update does not depend on what the text says
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=100 * args.batch * T)

    def timed_step(step):
        start = time.perf_counter()
        train_step(model, optimizer, ids, step, tcfg.lr, tcfg, T, world)
        return time.perf_counter() - start

    for step in range(WARMUP):
        timed_step(step)
    reduced = world.reduce_seconds
    seconds = statistics.median(timed_step(step) for step in range(WARMUP, WARMUP + args.steps))
    grad_bytes = sum(p.nbytes for p in model.params.values())  # float32: 4 x parameters
    print(json.dumps({
        "ranks": world.size,
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)),
        "s_per_step": seconds,
        "tokens_per_s": args.batch * T / seconds,
        "reduce_s_per_step": (world.reduce_seconds - reduced) / args.steps,  # 0 for one rank
        "reduce_bytes_per_step": grad_bytes if world.size > 1 else 0,
    }))


def run_config(args, ranks, threads):
    """Run one configuration in fresh processes; returns its JSON line as a dict."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})  # BLAS reads them
    command = [sys.executable, str(Path(__file__).resolve()), "--worker",
               "mpi" if ranks > 1 else "single", "--steps", str(args.steps),
               "--batch", str(args.batch), "--preset", args.preset]
    if ranks > 1:
        command = [find_mpiexec(), "-n", str(ranks), *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: `{' '.join(command)}` failed with status {done.returncode}:\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args):
    """Part 1: print the scaling table; returns the 2 ranks' all-reduce bus bandwidth, bytes/s."""
    missing = [name for name, found in [("mpiexec", find_mpiexec()),
                                        ("mpi4py", importlib.util.find_spec("mpi4py"))]
               if found is None]
    if missing:
        raise SystemExit(f"error: {' and '.join(missing)} not found: this benchmark launches "
                         "`mpiexec -n 2`: install with `pip install -r "
                         "requirements-distributed.txt` (the mpich wheel brings mpiexec)")
    cfg = GPTConfig.preset(args.preset)
    print(f"this machine: {usable_cores()} usable cores ({os.cpu_count()} in all)")
    print(f"preset {args.preset}: {parameter_count(cfg):,} parameters; updates of {args.batch} x "
          f"{cfg.n_ctx} tokens, float32")
    print(f"{WARMUP} warm-up + {args.steps} timed updates per run, {args.rounds} round(s); "
          "the table gives medians", flush=True)
    runs = {label: [] for label, _, _ in CONFIGS}
    for r in range(args.rounds):  # the configurations take turns, so noise hits them all alike
        for label, ranks, threads in CONFIGS:
            runs[label].append(run_config(args, ranks, threads))
            print(f"  round {r + 1}/{args.rounds}, {label}: "
                  f"{runs[label][-1]['s_per_step'] * 1000:,.1f} ms/step", flush=True)
    median = {label: {key: statistics.median(run[key] for run in results) for key in results[0]}
              for label, results in runs.items()}
    baseline = median[CONFIGS[0][0]]["s_per_step"]
    one_core = median[CONFIGS[1][0]]["s_per_step"]
    print(f"\n{'configuration':<20}{'s/step':>9}{'tokens/s':>10}{'speedup':>9}{'effic.':>8}"
          f"{'reduce ms':>11}{'share':>7}{'bus GB/s':>10}")
    for label, ranks, threads in CONFIGS:
        m = median[label]
        s, reduce = m["s_per_step"], m["reduce_s_per_step"]
        bus = f"{bus_bandwidth(m) / 1e9:.2f}" if ranks > 1 else "-"
        print(f"{label:<20}{s:>9.3f}{m['tokens_per_s']:>10,.0f}{baseline / s:>8.2f}x"
              f"{one_core / (ranks * threads * s):>8.0%}{reduce * 1000:>11.1f}{reduce / s:>7.0%}"
              f"{bus:>10}")
    return bus_bandwidth(median[CONFIGS[2][0]])


def project(gpu_flops, bus_bytes_per_s, epoch_tokens, gpus=GPU_COUNTS):
    """Part 2, pure arithmetic: GPT-1's pre-training on each number of GPUs, as rows of
    (N, compute s/step, all-reduce s/step, efficiency, days for all 100 epochs)."""
    cfg = GPTConfig.preset("gpt1")
    tokens = GPT1_BATCH * GPT1_SEQ  # per update
    compute_1 = flops_per_token(cfg, GPT1_SEQ).training * tokens / gpu_flops  # s/step, 1 GPU
    grad_bytes = 4 * parameter_count(cfg)  # float32 gradients, one flat buffer
    steps = GPT1_EPOCHS * epoch_tokens / tokens
    rows = []
    for n in gpus:
        compute, reduce = compute_1 / n, ring_factor(n) * grad_bytes / bus_bytes_per_s
        rows.append((n, compute, reduce, compute_1 / (n * (compute + reduce)),
                     steps * (compute + reduce) / 86400))
    return rows


def print_projection(title, rows):
    print(f"\n{title}\n{'GPUs':>5}{'compute s/step':>16}{'all-reduce s/step':>19}"
          f"{'efficiency':>12}{'days':>10}")
    for n, compute, reduce, efficiency, days in rows:
        print(f"{n:>5}{compute:>16.4f}{reduce:>19.4f}{efficiency:>12.1%}{days:>10,.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed updates per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration")
    parser.add_argument("--batch", type=int, default=8, help="sequences per update (global)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--projection-only", action="store_true", help="skip the measurement")
    parser.add_argument("--gpu-tflops", type=float, default=200.0,
                        help="sustained TFLOP/s of one GPU (assumed: 0.4 x an H200's ~495 dense "
                             "TF32 peak)")
    parser.add_argument("--bus-gbps", type=float, default=150.0,
                        help="all-reduce bus bandwidth in GB/s (assumed: NVLink inside a node)")
    parser.add_argument("--total-tokens", type=float, default=BOOKSCORPUS_TOKENS,
                        help="tokens in one epoch (default: BooksCorpus, 984,846,357 words x "
                             "4/3 BPE tokens per word)")
    parser.add_argument("--worker", choices=("single", "mpi"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.batch % 2:
        parser.error(f"--batch {args.batch} does not split over 2 ranks: choose an even one")
    measured = None if args.projection_only else measure(args)

    cfg = GPTConfig.preset("gpt1")
    tokens = GPT1_BATCH * GPT1_SEQ
    flops = flops_per_token(cfg, GPT1_SEQ).training
    source = ("BooksCorpus's 984,846,357 words x ~4/3 BPE tokens per word"
              if args.total_tokens == BOOKSCORPUS_TOKENS else "--total-tokens")
    print("\n".join([
        f"\nGPT-1 pre-training on N GPUs, on paper: {parameter_count(cfg):,} parameters",
        f"{flops / 1e6:,.1f} MFLOP per token (forward + backward) x {GPT1_BATCH} x {GPT1_SEQ} "
        f"tokens per update = {flops * tokens / 1e12:,.1f} TFLOP",
        f"{GPT1_EPOCHS} epochs of {args.total_tokens / 1e9:.3g} billion tokens = "
        f"{GPT1_EPOCHS * args.total_tokens / tokens:,.0f} updates",
        f"  (one epoch: {source})",
        f"assumed: one GPU sustains {args.gpu_tflops:g} TFLOP/s whatever its share of the batch",
        "  (0.4 x an H200's ~495 TFLOP/s dense TF32 peak; minigpt1's CuPy float32 runs with TF32",
        "  off, whose peak is ~67 TFLOP/s: try --gpu-tflops 27)",
        f"assumed: ring all-reduce at {args.bus_gbps:g} GB/s bus bandwidth (NVLink inside an "
        "8-GPU node;",
        "  beyond 8 GPUs the ring crosses nodes, over slower InfiniBand)",
        "no overlap: minigpt1 sums the gradients after the whole backward pass,",
        "  so a step takes compute + all-reduce",
    ]))
    gpu_flops = args.gpu_tflops * 1e12
    print_projection(f"with the assumed {args.bus_gbps:g} GB/s interconnect",
                     project(gpu_flops, args.bus_gbps * 1e9, args.total_tokens))
    if measured:
        print_projection(f"with the {measured / 1e9:.2f} GB/s measured above (MPI between CPU "
                         "processes through host memory;\na lower bound: it includes waiting for "
                         "the slower rank)",
                         project(gpu_flops, measured, args.total_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
