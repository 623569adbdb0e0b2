"""What a model costs before it runs: FLOPs per token, memory, and a time estimate.

FLOPs count the multiply-adds of the matrix products, 2 per multiply-add, exactly as this
code computes them. Per token of a sequence of length T, forward:

    each block   2 C (3C)      query, key and value          (c_attn)
                 2 T C         scores Q K^T, all T keys (the causal mask hides half of them;
                 2 T C         weights @ V   the count keeps them, as MFU figures usually do)
                 2 C C         attention output              (c_proj)
                 2 C (4C) * 2  the MLP's two linears         (c_fc, c_proj)
    the LM head  2 C V         logits = h We^T (tied)

so forward = L (24 C^2 + 4 T C) + 2 C V. The backward pass computes two products for each
forward one (the input's gradient and the weight's), hence training = 3 x forward. Element-wise
work (LayerNorm, GELU, softmax, AdamW) adds O(C) per token, which the count leaves out: it is
small in FLOPs but not in time on a CPU, which is why measured throughput sits below the peak.
"""

import time
from dataclasses import dataclass

import numpy as np

from ..model.parameters import parameter_count


@dataclass(frozen=True)
class FlopCount:
    forward: int  # FLOPs per token, forward pass
    training: int  # FLOPs per token, forward + backward


def flops_per_token(cfg, seq_len=None):
    """Matrix-product FLOPs per token of a sequence of seq_len tokens (default n_ctx)."""
    T, C = seq_len or cfg.n_ctx, cfg.n_embd
    forward = cfg.n_layer * (24 * C * C + 4 * T * C) + 2 * C * cfg.vocab_size
    return FlopCount(forward=forward, training=3 * forward)


def estimate_memory(cfg, micro_batch_size, seq_len):
    """Rough bytes (float32) for parameters, gradients, Adam moments and one micro-batch's
    activations: per block and token the caches hold about 22 C values and 3 nh T attention
    probabilities; the LM head adds its probabilities and their gradient, 2 V per token."""
    n = parameter_count(cfg)
    tokens = micro_batch_size * seq_len
    per_token = cfg.n_layer * (22 * cfg.n_embd + 3 * cfg.n_head * seq_len) + 2 * cfg.vocab_size
    return {"parameters": 4 * n, "gradients": 4 * n, "adam moments": 8 * n,
            "activations": 4 * tokens * per_token}


def available_memory():
    """Bytes the machine can still give this process (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def check_fits(cfg, batch_size, micro_batch_size, seq_len=None, available=None,
               sequences_per_item=1, processes=1):
    """Refuse, before anything is allocated, an update that will not fit in memory.

    Batches count items: sequences in pre-training, examples in fine-tuning, where an example
    runs the transformer on `sequences_per_item` sequences (2 for similarity, K answers for
    multiple choice). `available` defaults to what the machine has now, shared by `processes`
    (the ranks of a distributed run on this machine; batch_size is then one rank's). Keeps
    a 10% margin for what the estimate leaves out (Python, the data, temporaries). The message
    gives the estimate and the largest micro-batch (gradient accumulation: same update, less
    activation memory) that fits.
    """
    available = available_memory() if available is None else available
    available = available and available / processes
    T = seq_len or cfg.n_ctx
    budget = 0.9 * available if available else None

    def need(micro):
        return sum(estimate_memory(cfg, micro * sequences_per_item, T).values())

    memory = estimate_memory(cfg, micro_batch_size * sequences_per_item, T)
    needed = sum(memory.values())
    if budget is None or needed <= budget:
        return
    parts = ", ".join(f"{k} {v / 2**30:.1f}" for k, v in memory.items())
    fitting = [m for m in range(micro_batch_size - 1, 0, -1)
               if batch_size % m == 0 and need(m) <= budget]
    if fitting:
        fix = (f"use --micro-batch-size {fitting[0]}: the same updates of {batch_size}, "
               f"accumulated over {batch_size // fitting[0]} micro-batches")
    else:
        fix = "even one sequence at a time does not fit: use a smaller preset or --n-ctx"
    raise ValueError(
        f"an update needs about {needed / 2**30:.1f} GiB ({parts} GiB) with "
        f"micro-batches of {micro_batch_size} x {T} tokens, but this machine has "
        f"{available / 2**30:.1f} GiB available{' per rank' if processes > 1 else ''}; {fix}"
    )


def matmul_peak(size=1024, seconds=0.5):
    """GFLOP/s of float32 (size x size) @ (size x size) products on this machine: the ceiling
    a training step's matrix products can reach (best of the repeats that fit in `seconds`)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # the first call pays for thread start-up and first touches
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe(cfg, batch_size, seq_len=None, peak_gflops=None, micro_batch_size=None,
             processes=1):
    """Lines that say what one update of batch_size sequences costs, for the terminal
    (activations held for micro_batch_size sequences at a time, default all of them; with
    `processes` ranks on this machine, what one rank's share costs)."""
    T = seq_len or cfg.n_ctx
    flops = flops_per_token(cfg, T)
    memory = estimate_memory(cfg, micro_batch_size or batch_size, T)
    parts = ", ".join(f"{k} {v / 2**20:,.0f}" for k, v in memory.items())
    lines = [
        f"{cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, T={T}, "
        f"V={cfg.vocab_size:,}: {parameter_count(cfg):,} parameters",
        f"compute: {flops.forward / 1e6:,.1f} MFLOP per token forward, "
        f"{flops.training / 1e6:,.1f} forward + backward; "
        f"{flops.training * batch_size * T / 1e9:,.1f} GFLOP per update of {batch_size} x {T}",
        f"memory: {sum(memory.values()) / 2**20:,.0f} MiB ({parts} MiB)",
    ]
    available = available_memory()
    if available:
        try:
            check_fits(cfg, batch_size, micro_batch_size or batch_size, T, available,
                       processes=processes)
            share = f", shared by {processes} ranks" if processes > 1 else ""
            lines.append(f"fits in the {available / 2**30:,.1f} GiB this machine has "
                         f"available{share}")
        except ValueError as err:
            lines.append(f"does not fit: {err}")
    if peak_gflops:
        best = peak_gflops * 1e9 / flops.training
        lines.append(f"at the matmul peak of {peak_gflops:,.0f} GFLOP/s: at most {best:,.0f} "
                     f"training tokens/s, an update takes at least "
                     f"{batch_size * T / best * 1000:,.0f} ms")
    return lines
