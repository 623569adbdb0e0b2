"""Training throughput of minigpt1, part by part: forward + backward, clipping, AdamW.

    python benchmarks/train_step.py                      # the small preset on the CPU
    python benchmarks/train_step.py --preset bench-small # a preset of compare_torch.py
    python benchmarks/train_step.py --preset gpt1 --batch 1
    python benchmarks/train_step.py --device cuda        # CuPy, on a machine with a GPU

A step is the one `python -m minigpt1 pretrain` runs: the batch's loss and gradients in
shards (training/lm_objective.py's batch_loss_and_grads, one thread per core on the CPU),
the gradients' norm clipped to 1, then AdamW. It prints the median time of the step and of
each part over several steps after a warm-up, the tokens per second, the GFLOP/s achieved
(matrix-product FLOPs, as `python -m minigpt1 estimate` counts them) and the peak memory: the
process's peak resident set on the CPU, CuPy's memory pool on the GPU. On the CPU it also
measures NumPy's float32 matmul peak and prints the MFU of the step and of its forward and
backward alone: what the optimizer's passes over every parameter cost a step's MFU. Beside
AdamW's bytes per second it prints the memory bandwidth NumPy reaches here (an in-place add
over arrays larger than the caches), which tells whether the optimizer waits on memory or
on its own passes. It checks that no array silently became float64 along the way.
"""

import argparse
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare_torch import PRESETS as COMPARED  # noqa: E402

from minigpt1 import GPT, GPTConfig, backend, parameter_count  # noqa: E402
from minigpt1.config import PRESETS  # noqa: E402
from minigpt1.fast.blas import kernels  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.training.estimate import flops_per_token, matmul_peak  # noqa: E402
from minigpt1.training.lm_objective import batch_loss_and_grads  # noqa: E402
from minigpt1.training.optim import AdamW, clip_grad_norm  # noqa: E402

tune_process()  # the allocator and BLAS settings of `python -m minigpt1` (fast/process.py)


def synchronize(device):
    if device == "cuda":
        backend.module_for("cuda").cuda.Device().synchronize()


def peak_memory_mb(device):
    if device == "cuda":
        return backend.module_for("cuda").get_default_memory_pool().total_bytes() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def config(name):
    """A preset of minigpt1 (config.py), else one of compare_torch.py's (gpt1 with overrides)."""
    if name in PRESETS:
        return GPTConfig.preset(name)
    return GPTConfig.preset("gpt1", **COMPARED[name][0])


def stream_bandwidth(elements=1 << 26, repeats=3):
    """Bytes per second of `a += b` over two float32 arrays of 256 MiB (read 2, write 1): how
    fast one NumPy pass streams memory on this machine, the best of a few."""
    a, b = np.ones(elements, np.float32), np.ones(elements, np.float32)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a += b
        best = min(best, time.perf_counter() - start)
    return 3 * a.nbytes / best


def timed_steps(model, windows, steps, warmup, device):
    """Median seconds of each part of a training step: {part: seconds}; and the last grads."""
    opt = AdamW(model.params)
    parts = {"forward + backward": [], "clipping": [], "AdamW": []}
    for step in range(warmup + steps):
        synchronize(device)
        times = [time.perf_counter()]
        _, grads = batch_loss_and_grads(model, windows, 0, step, len(windows))
        synchronize(device)
        times.append(time.perf_counter())
        clip_grad_norm(grads, 1.0)
        synchronize(device)
        times.append(time.perf_counter())
        opt.step(grads)
        synchronize(device)
        times.append(time.perf_counter())
        if step >= warmup:
            for part, start, stop in zip(parts, times, times[1:], strict=False):
                parts[part].append(stop - start)
    return {part: statistics.median(seconds) for part, seconds in parts.items()}, grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=sorted({*PRESETS, *COMPARED}))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default n_ctx)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    args = parser.parse_args(argv)

    cfg = config(args.preset)
    T = args.seq or cfg.n_ctx
    model = GPT(cfg, seed=0, device=args.device)
    windows = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(args.batch, T + 1))
    parts, grads = timed_steps(model, windows, args.steps, args.warmup, args.device)
    memory = peak_memory_mb(args.device)  # before stream_bandwidth's arrays
    wrong = [n for n, g in grads.items() if g.dtype != model.params[n].dtype]
    wrong += [n for n, p in model.params.items() if p.dtype != np.float32]
    step_time = sum(parts.values())
    tokens = args.batch * T
    print(f"preset {args.preset}: {cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, "
          f"V={cfg.vocab_size}, {parameter_count(cfg):,} parameters")
    print(f"device {args.device}, batch {args.batch} x {T} tokens, float32, "
          f"{args.steps} timed steps")
    print(f"step time (medians)  {step_time * 1000:10.1f} ms")
    for part, seconds in parts.items():
        print(f"  {part:<19}{seconds * 1000:10.1f} ms  {seconds / step_time:6.1%}")
    print(f"training tokens/s    {tokens / step_time:10,.0f}")
    gflop = flops_per_token(cfg, T).training * tokens / 1e9
    print(f"achieved GFLOP/s     {gflop / step_time:10.1f}")
    if args.device == "cpu":
        peak = matmul_peak()
        blas = kernels()  # "" without OpenBLAS, or when it does not name its kernels
        print(f"float32 matmul peak  {peak:10.1f} GFLOP/s" + (f" ({blas})" if blas else ""))
        print(f"MFU                  {gflop / step_time / peak:10.1%} of the step, "
              f"{gflop / parts['forward + backward'] / peak:.1%} of its forward + backward")
        moved = 28 * parameter_count(cfg)  # AdamW reads p, g, m, v and writes p, m, v
        print(f"AdamW's traffic      {moved / 1e9:10.2f} GB at {moved / parts['AdamW'] / 1e9:.1f} "
              f"GB/s; one NumPy pass streams {stream_bandwidth() / 1e9:.1f} GB/s here")
    print(f"peak memory          {memory:10,.0f} MiB")
    print(f"float64 arrays       {'none' if not wrong else ', '.join(wrong)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
