"""Training throughput of minigpt1: tokens/s of forward + backward + AdamW, and peak memory.

    python benchmarks/train_step.py                      # the small preset on the CPU
    python benchmarks/train_step.py --preset tiny --batch 16
    python benchmarks/train_step.py --device cuda        # CuPy, on a machine with a GPU

It prints the median step time over several steps after a warm-up, the tokens per second
that gives, the GFLOP/s achieved (matrix-product FLOPs, as `python -m minigpt1 estimate` counts
them) and the peak memory: the process's peak resident set on the CPU, CuPy's memory pool on
the GPU. It also checks that no array silently became float64 along the way.
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt1 import GPT, GPTConfig, backend, parameter_count  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.training.estimate import flops_per_token  # noqa: E402
from minigpt1.training.optim import AdamW, clip_grad_norm  # noqa: E402

tune_process()  # the allocator and BLAS settings of `python -m minigpt1` (fast/process.py)


def synchronize(device):
    if device == "cuda":
        backend.module_for("cuda").cuda.Device().synchronize()


def peak_memory_mb(device):
    if device == "cuda":
        return backend.module_for("cuda").get_default_memory_pool().total_bytes() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default n_ctx)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    args = parser.parse_args(argv)

    cfg = GPTConfig.preset(args.preset)
    T = args.seq or cfg.n_ctx
    model = GPT(cfg, seed=0, device=args.device)
    opt = AdamW(model.params)
    rng = np.random.default_rng(0)
    dropout_rng = backend.device_rng(args.device, 0)
    times = []
    for step in range(args.warmup + args.steps):
        ids = rng.integers(0, cfg.vocab_size, size=(args.batch, T))
        synchronize(args.device)
        start = time.perf_counter()
        _, grads = model.lm_loss_and_grads(ids, train=True, rng=dropout_rng)
        clip_grad_norm(grads, 1.0)
        opt.step(grads)
        synchronize(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    wrong = [n for n, g in grads.items() if g.dtype != model.params[n].dtype]
    wrong += [n for n, p in model.params.items() if p.dtype != np.float32]
    step_time = statistics.median(times)
    tokens = args.batch * T
    print(f"preset {args.preset}: {cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, "
          f"V={cfg.vocab_size}, {parameter_count(cfg):,} parameters")
    print(f"device {args.device}, batch {args.batch} x {T} tokens, float32, "
          f"{args.steps} timed steps")
    print(f"step time (median)   {step_time * 1000:10.1f} ms")
    print(f"training tokens/s    {tokens / step_time:10,.0f}")
    gflops = flops_per_token(cfg, T).training * tokens / step_time / 1e9
    print(f"achieved GFLOP/s     {gflops:10.1f}")
    print(f"peak memory          {peak_memory_mb(args.device):10,.0f} MiB")
    print(f"float64 arrays       {'none' if not wrong else ', '.join(wrong)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
