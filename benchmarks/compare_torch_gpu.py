"""minigpt1 on CuPy beside the same GPT-1 in PyTorch on the same NVIDIA GPU.

    python benchmarks/compare_torch_gpu.py                       # gpt1, batch 8 x 512
    python benchmarks/compare_torch_gpu.py --batch 4 --steps 20

Runs on a machine with CuPy, PyTorch (CUDA build) and a GPU; installs nothing. The PyTorch
reference is compare_torch.py's (post-LN blocks, tanh GELU, SDPA attention, tied head),
holding a copy of minigpt1's weights; both must give the same loss before anything is timed.
Each mode is timed alternately, every repeat ending with a device synchronisation, and the
median is reported: tokens/s, the ratio minigpt1/torch, MFU against each framework's float32
matmul peak measured at start (TF32 off in both), and the memory each framework's allocator
holds after training (CuPy's memory pool, torch's peak reserved bytes).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_torch import (  # noqa: E402
    NEW_TOKENS,
    PRESETS,
    PROMPT_LEN,
    batch_ids,
    check_same_loss,
    import_torch,
    minigpt1_steps,
    time_alternately,
    torch_matmul_peak,
    torch_params,
    torch_steps,
    train_mode,
)

from minigpt1 import GPT, GPTConfig, backend  # noqa: E402
from minigpt1.training.estimate import flops_per_token  # noqa: E402

PEAK_SIZE = 8192  # matmul size for the peak: big enough to fill an H100/H200


def cupy_matmul_peak(cupy, size=PEAK_SIZE, seconds=1.0):
    """CuPy's float32 (size x size) @ (size x size) GFLOP/s, best of repeated timings."""
    a = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    b = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    out = cupy.empty((size, size), dtype=cupy.float32)
    cupy.matmul(a, b, out=out)
    cupy.cuda.Device().synchronize()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        cupy.matmul(a, b, out=out)
        cupy.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt1", choices=list(PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed repeats per mode")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    if not backend.gpu_available():
        sys.exit("compare_torch_gpu.py needs CuPy and an NVIDIA GPU")
    torch = import_torch()
    if not torch.cuda.is_available():
        sys.exit("compare_torch_gpu.py needs a CUDA build of PyTorch")
    cupy = backend.cupy
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 in both, as CuPy's default
    torch.backends.cudnn.allow_tf32 = False

    cfg = GPTConfig.preset("gpt1", **PRESETS[args.preset][0])
    model = GPT(cfg, seed=0, device="cuda")
    p = torch_params(torch, model, device="cuda")
    ours, theirs, rel = check_same_loss(torch, cfg, args.batch, model, p, device="cuda")
    gpu = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    peaks = cupy_matmul_peak(cupy), torch_matmul_peak(torch, PEAK_SIZE, 1.0, device="cuda")
    print(f"{gpu}: cupy {cupy.__version__}, torch {torch.__version__}, float32 (TF32 off)")
    print(f"float32 matmul peak ({PEAK_SIZE}^3): cupy {peaks[0]:,.0f} GFLOP/s, "
          f"torch {peaks[1]:,.0f} GFLOP/s")
    print(f"{args.preset}: {cfg.n_layer} layers, C={cfg.n_embd}, T={cfg.n_ctx}, "
          f"V={cfg.vocab_size}, batch {args.batch}; median of {args.steps} alternating repeats")
    print(f"same loss (dropout off): minigpt1 {ours:.6f}, torch {theirs:.6f}, rel {rel:.1e}")

    ids = batch_ids(cfg, args.batch)
    drop = cfg.resid_pdrop
    fns = minigpt1_steps(model, ids, [drop]), torch_steps(torch, cfg, p, ids, [drop], "cuda")

    def sync():
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()

    flops = flops_per_token(cfg, cfg.n_ctx)
    gen_flops = flops_per_token(cfg, PROMPT_LEN + NEW_TOKENS // 2).forward  # mean context
    tokens = args.batch * cfg.n_ctx
    per_mode = {train_mode(drop): (tokens, flops.training), "forward": (tokens, flops.forward),
                "generate": (NEW_TOKENS, gen_flops)}
    print(f"{'mode':<10}{'minigpt1 tok/s':>16}{'torch tok/s':>14}{'ratio':>8}"
          f"{'MFU minigpt1':>14}{'MFU torch':>11}")
    for mode, (n, per_token) in per_mode.items():
        times = time_alternately([f[mode] for f in fns], args.warmup, args.steps, 0.0, sync)
        rates = [n / t for t in times]
        mfu = [r * per_token / 1e9 / peak for r, peak in zip(rates, peaks, strict=True)]
        print(f"{mode:<10}{rates[0]:>16,.0f}{rates[1]:>14,.0f}{rates[0] / rates[1]:>8.2f}"
              f"{mfu[0]:>14.1%}{mfu[1]:>11.1%}")
    held = cupy.get_default_memory_pool().total_bytes(), torch.cuda.max_memory_reserved()
    print(f"GPU memory held after training (MiB): minigpt1 {held[0] / 2**20:,.0f} "
          f"(CuPy pool), torch {held[1] / 2**20:,.0f} (peak reserved); "
          f"ratio {held[0] / held[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
