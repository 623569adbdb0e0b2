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

import math
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..fast.batch_threads import blas_threads
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


# Drawing a batch builds its int64 windows (B, T + 1) through an int64 index array of the same
# shape: 16 bytes a token, for the whole batch at once, however small the micro-batches.
WINDOW_BYTES = 16
MARGIN = 0.9  # of the memory available; the rest for what the estimate leaves out


def estimate_memory(cfg, micro_batch_size, seq_len, batch_size=None, threads=1,
                    sequences_per_item=1):
    """Rough bytes (float32) for parameters, Adam moments, the gradients and activations a
    training step holds at once, and the batch's windows (batch_size items, default one
    micro-batch; an item runs `sequences_per_item` sequences).

    A step runs each micro-batch as two shards, up to `threads` at once (update.batch_shards,
    fast/batch_threads.py): each holds its activations, per block and token about 22 C values
    and 3 nh T attention probabilities plus 2 V for the LM head's probabilities and their
    gradient, and ends with a gradient set of its own. The pairwise sum of those sets keeps at
    most log2(shards) partial sums waiting.
    """
    n = parameter_count(cfg)
    batch_size = batch_size or micro_batch_size
    shards = step_shards(batch_size, micro_batch_size)
    running = min(threads, shards)
    tokens = running * math.ceil(micro_batch_size / 2) * sequences_per_item * seq_len
    per_token = cfg.n_layer * (22 * cfg.n_embd + 3 * cfg.n_head * seq_len) + 2 * cfg.vocab_size
    return {"parameters": 4 * n, "adam moments": 8 * n,
            "gradients": 4 * n * min(shards, running + int(math.log2(shards))),
            "activations": 4 * tokens * per_token,
            "batch windows": WINDOW_BYTES * batch_size * sequences_per_item * (seq_len + 1)}


def step_shards(batch_size, micro_batch_size):
    """How many shards a step of batch_size items runs in: two per micro-batch, one for a
    micro-batch of one item. len(update.batch_shards(...)) without building the list, which
    a batch of millions would make long (tests hold the two equal)."""
    whole, rest = divmod(batch_size, micro_batch_size)
    return whole * min(micro_batch_size, 2) + min(rest, 2)


# Where Linux reports memory; tests point these at fake files.
PROC = Path("/proc")
CGROUP_FS = Path("/sys/fs/cgroup")
NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a number near 2**63


def memory_limits():
    """{what limits it: bytes this process can still allocate under it} for every limit the
    system reports. A container's cgroup limit is not in MemAvailable, and passing it gets the
    process killed without a word; RLIMIT_AS turns the same mistake into a MemoryError deep
    inside a training step. Both must be known before anything is allocated."""
    limits = {"this machine's free memory": meminfo_available(),
              "the address-space limit RLIMIT_AS (ulimit -v)": address_space_left(),
              "the cgroup memory limit": cgroup_memory_left()}
    return {what: max(0, left) for what, left in limits.items() if left is not None}


def available_memory():
    """Bytes this process can still allocate (the tightest memory_limits), or None if unknown."""
    limits = memory_limits()
    return min(limits.values()) if limits else None


def read_number(path, field=None):
    """An integer from a /proc or cgroup file: the whole file, or the value after `field` on
    its line ("MemAvailable:", "VmSize:", "inactive_file"); None when absent or "max"."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    if field is not None:
        words = (line.split() for line in text.splitlines())
        text = next((w[1] for w in words if len(w) > 1 and w[0].rstrip(":") == field), "")
    try:
        return int(text.strip())
    except ValueError:
        return None


def meminfo_available():
    kb = read_number(PROC / "meminfo", "MemAvailable")
    return None if kb is None else kb * 1024


def address_space_left():
    """RLIMIT_AS less the address space this process maps already (VmSize)."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft - 1024 * (read_number(PROC / "self" / "status", "VmSize") or 0)


CGROUP_FILES = {  # (limit, usage, statistics with the usage's reclaimable part)
    "v2": ("memory.max", "memory.current", "memory.stat", "inactive_file"),
    "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat",
           "total_inactive_file"),
}


def cgroup_memory_left():
    """The least room (limit - usage) in this process's memory cgroups and their ancestors,
    whose limits apply too: cgroup v2 ("0::/path") and v1 ("N:memory:/path")."""
    try:
        lines = (PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        parts = line.split(":", 2)  # hierarchy id, controllers, path
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            root, version = CGROUP_FS, "v2"
        elif "memory" in controllers.split(","):
            root, version = CGROUP_FS / "memory", "v1"
        else:
            continue
        own = PurePosixPath(path.lstrip("/"))
        for folder in (own, *own.parents):
            rooms.append(cgroup_room(root / folder, *CGROUP_FILES[version]))
    rooms = [room for room in rooms if room is not None]
    return min(rooms) if rooms else None


def cgroup_room(folder, limit_file, usage_file, stat_file, reclaimable):
    """What one cgroup folder's limit leaves, or None without a limit. Usage counts the page
    cache, which the kernel drops before it kills, so its inactive part counts as free."""
    limit, usage = read_number(folder / limit_file), read_number(folder / usage_file)
    if limit is None or limit >= NO_LIMIT or usage is None:
        return None
    return limit - usage + (read_number(folder / stat_file, reclaimable) or 0)


def divisors(n):
    """The divisors of n, in no particular order."""
    return {x for d in range(1, math.isqrt(n) + 1) if n % d == 0 for x in (d, n // d)}


def check_fits(cfg, batch_size, micro_batch_size, seq_len=None, available=None,
               sequences_per_item=1, processes=1):
    """Refuse, before anything is allocated, an update that will not fit in memory.

    Batches count items: sequences in pre-training, examples in fine-tuning, where an example
    runs the transformer on `sequences_per_item` sequences (2 for similarity, K answers for
    multiple choice). `available` defaults to the tightest of memory_limits(), shared by
    `processes` (the ranks of a distributed run on this machine; batch_size is then one
    rank's). Keeps a 10% margin for what the estimate leaves out (Python, the data,
    temporaries). The message gives the estimate, the limit, and the largest micro-batch
    (gradient accumulation: same update, less activation memory) that fits.
    """
    source = "this machine's free memory"
    if available is None:
        limits = memory_limits()
        if not limits:
            return
        source = min(limits, key=limits.get)
        available = limits[source]
    available /= processes
    T, k, threads = seq_len or cfg.n_ctx, sequences_per_item, blas_threads()
    memory = estimate_memory(cfg, micro_batch_size, T, batch_size, threads, k)
    needed = sum(memory.values())
    if needed <= MARGIN * available:
        return
    parts = ", ".join(f"{what} {size / 2**30:.1f}" for what, size in memory.items())
    raise ValueError(
        f"an update needs about {needed / 2**30:.1f} GiB ({parts} GiB) with "
        f"micro-batches of {micro_batch_size} x {T} tokens, but only {available / 2**30:.1f} "
        f"GiB available{' per rank' if processes > 1 else ''} under {source}; "
        f"{memory_advice(cfg, batch_size, T, k, threads, MARGIN * available)}"
    )


def memory_advice(cfg, batch_size, seq_len, sequences_per_item, threads, budget):
    """What to change so an update fits in `budget` bytes: the largest micro-batch that divides
    the batch and fits, else the batch or the model."""
    def needed(micro):
        return sum(estimate_memory(cfg, micro, seq_len, batch_size, threads,
                                   sequences_per_item).values())

    fitting = [m for m in divisors(batch_size) if needed(m) <= budget]
    if fitting:
        micro = max(fitting)
        return (f"use --micro-batch-size {micro}: the same updates of {batch_size}, "
                f"accumulated over {batch_size // micro} micro-batches")
    one = estimate_memory(cfg, 1, seq_len, batch_size, threads, sequences_per_item)
    if sum(one.values()) - one["batch windows"] <= budget:  # all but the windows would fit
        return (f"the windows of a batch of {batch_size} x {seq_len + 1} tokens alone take "
                f"{one['batch windows'] / 2**30:.1f} GiB: use a smaller --batch-size")
    return "even one sequence at a time does not fit: use a smaller preset or --n-ctx"


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
    memory = estimate_memory(cfg, micro_batch_size or batch_size, T, batch_size, blas_threads())
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
    if available is not None:
        try:  # without `available`, a refusal names the limit that binds
            check_fits(cfg, batch_size, micro_batch_size or batch_size, T, processes=processes)
            share = f", shared by {processes} ranks" if processes > 1 else ""
            lines.append(f"fits in the {available / 2**30:,.1f} GiB available to this "
                         f"process{share}")
        except ValueError as err:
            lines.append(f"does not fit: {err}")
    if peak_gflops:
        best = peak_gflops * 1e9 / flops.training
        lines.append(f"at the matmul peak of {peak_gflops:,.0f} GFLOP/s: at most {best:,.0f} "
                     f"training tokens/s, an update takes at least "
                     f"{batch_size * T / best * 1000:,.0f} ms")
    return lines
