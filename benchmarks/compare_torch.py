"""minigpt1 beside the same GPT-1 in PyTorch: training, forward and generation speed, and memory.

    python benchmarks/compare_torch.py                            # tiny, bench-small and gpt1
    python benchmarks/compare_torch.py --presets tiny bench-small --steps 3
    python benchmarks/compare_torch.py --presets gpt1 --steps 2   # seconds per step on a CPU

PyTorch (a dev requirement, benchmark-only) runs a short reference written below: post-LN
blocks, tanh GELU, causal multi-head attention, tied LM head, holding a copy of minigpt1's
weights; both must give the same loss on one batch before anything is timed. Each mode is
timed alternately (minigpt1, torch, torch, minigpt1, ...) in one process, so drift hits both,
and the median is reported: tokens/s, the ratio minigpt1/torch, and MFU against each
framework's own float32 matmul peak (FLOPs as `python -m minigpt1 estimate` counts them).
Peak memory: each framework's training step runs alone in a fresh subprocess (--only), which
reports its peak resident set (VmHWM) and its resident set just before the first step.
"""

import argparse
import dataclasses
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt1 import GPT, GPTConfig  # noqa: E402
from minigpt1.backend import to_numpy  # noqa: E402
from minigpt1.fast.batch_threads import row_shards  # noqa: E402
from minigpt1.fast.blas import kernels, openblas  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.model.generate import generate  # noqa: E402
from minigpt1.training.estimate import flops_per_token, matmul_peak  # noqa: E402
from minigpt1.training.lm_objective import batch_loss_and_grads  # noqa: E402
from minigpt1.training.optim import AdamW, clip_grad_norm  # noqa: E402
from minigpt1.training.update import batch_shards  # noqa: E402

tune_process()  # the allocator and BLAS settings of `python -m minigpt1` (fast/process.py)

PRESETS = {  # name -> (GPTConfig overrides of the gpt1 preset, batch size)
    "tiny": (dict(n_layer=4, n_embd=128, n_head=4, n_ctx=128, vocab_size=4096), 16),
    "bench-small": (dict(n_layer=6, n_embd=384, n_head=6, n_ctx=256, vocab_size=8192), 8),
    "gpt1": (dict(), 1),
}
PROMPT_LEN, NEW_TOKENS = 8, 32  # generation: batch 1, greedy
LR, BETAS, EPS, WD, CLIP = 2.5e-4, (0.9, 0.999), 1e-8, 0.01, 1.0


def import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("compare_torch.py needs PyTorch: pip install -r requirements-dev.txt")
    return torch


def blas_threads():
    """Threads NumPy's BLAS uses: OpenBLAS's own count if minigpt1 can read it, else the env
    vars, else all cores."""
    blas = openblas()
    if blas is not None:
        return blas.get(), "OpenBLAS"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), f"${var}"
    return os.cpu_count(), "os.cpu_count()"


def proc_status_mib(field):
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc (Linux).

    VmHWM, not ru_maxrss: after fork + exec, ru_maxrss keeps the parent's peak (which has
    torch loaded), while VmHWM belongs to the new process's own memory map.
    """
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB


# ---- the PyTorch reference: a functional GPT-1 over minigpt1's parameter dict -------------


def torch_params(torch, model, share=False, device="cpu"):
    """minigpt1's params (HF Conv1D layout, weights [in, out]) as leaf tensors with grads.

    On the CPU, `share` makes the tensors views of minigpt1's arrays (no second copy).
    """
    out = {}
    for name, p in model.params.items():
        host = to_numpy(p)
        t = torch.from_numpy(host if share else host.copy()).to(device)
        out[name] = t.requires_grad_(True)
    return out


def torch_body(torch, p, cfg, ids, drop, past=None):
    """ids (B, T) -> h (B, T, C) and each layer's (keys, values) (B, nh, P + T, hs)."""
    F = torch.nn.functional
    B, T = ids.shape
    C, nh = cfg.n_embd, cfg.n_head
    start = 0 if past is None else past[0][0].shape[2]
    x = p["tokens_embed.weight"][ids] + p["positions_embed.weight"][start : start + T]
    x = F.dropout(x, drop, training=drop > 0)  # (B, T, C)
    new_past = []
    for i in range(cfg.n_layer):
        w = {k[len(f"h.{i}.") :]: v for k, v in p.items() if k.startswith(f"h.{i}.")}
        qkv = x @ w["attn.c_attn.weight"] + w["attn.c_attn.bias"]  # (B, T, 3C)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=-1))
        if past is not None:  # decoding: one new token sees every cached key
            assert T == 1, "the reference decodes one token at a time"
            k, v = torch.cat([past[i][0], k], dim=2), torch.cat([past[i][1], v], dim=2)
        new_past.append((k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=past is None)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        a = F.dropout(y @ w["attn.c_proj.weight"] + w["attn.c_proj.bias"], drop, drop > 0)
        n = F.layer_norm(x + a, (C,), w["ln_1.weight"], w["ln_1.bias"], cfg.layer_norm_epsilon)
        f = F.gelu(n @ w["mlp.c_fc.weight"] + w["mlp.c_fc.bias"], approximate="tanh")
        m = F.dropout(f @ w["mlp.c_proj.weight"] + w["mlp.c_proj.bias"], drop, drop > 0)
        x = F.layer_norm(n + m, (C,), w["ln_2.weight"], w["ln_2.bias"], cfg.layer_norm_epsilon)
    return x, new_past


def torch_loss(torch, p, cfg, ids, drop):
    """L1 on ids (B, T + 1): mean cross-entropy of ids[:, 1:] given ids[:, :-1]."""
    h, _ = torch_body(torch, p, cfg, ids[:, :-1], drop)
    logits = h @ p["tokens_embed.weight"].T  # (B, T, V), the tied head
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


def torch_generate(torch, p, cfg, prompt, new_tokens):
    """Greedy continuation of prompt (1, T0) with a KV cache; returns (1, T0 + new)."""
    ids, past, feed = prompt, None, prompt
    with torch.no_grad():
        for _ in range(new_tokens):
            h, past = torch_body(torch, p, cfg, feed, 0.0, past)
            feed = (h[:, -1] @ p["tokens_embed.weight"].T).argmax(-1, keepdim=True)  # (1, 1)
            ids = torch.cat([ids, feed], dim=1)
    return ids


def torch_optimizer(torch, p):
    """AdamW with minigpt1's hyper-parameters; decay on matrices only."""
    groups = [
        {"params": [t for t in p.values() if t.ndim >= 2], "weight_decay": WD},
        {"params": [t for t in p.values() if t.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)


# ---- one step of each mode, for each framework -------------------------------------------


def batch_ids(cfg, batch, seed=0):
    """Random token ids (B, T + 1): T = n_ctx inputs and their next tokens."""
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, cfg.n_ctx + 1))


def with_dropout(model, p):
    """The same model, its weights shared (not copied), with every dropout rate set to p."""
    cfg = dataclasses.replace(model.cfg, embd_pdrop=p, attn_pdrop=p, resid_pdrop=p)
    return GPT(cfg, params=model.params)


def minigpt1_steps(model, ids, dropouts, seed=0):
    """{mode: zero-argument callable doing one repeat} for minigpt1: its training step is the
    one `python -m minigpt1 pretrain` runs (the batch in shards, one thread per core)."""
    opt, steps = AdamW(model.params, LR, BETAS, EPS, WD), itertools.count()

    def train(dropped):
        _, grads = batch_loss_and_grads(dropped, ids, seed, next(steps), len(ids))
        clip_grad_norm(grads, CLIP)
        opt.step(grads)

    trains = {train_mode(p): functools.partial(train, with_dropout(model, p)) for p in dropouts}
    return {**trains, "forward": lambda: model.lm_loss(ids),
            "generate": lambda: generate(model, ids[:1, :PROMPT_LEN], NEW_TOKENS, temperature=0)}


def train_mode(p):
    """The name of the training mode with dropout p: 'train 0.1', 'train 0'."""
    return f"train {p:g}"


def torch_steps(torch, cfg, p, ids, dropouts=(0.1,), device="cpu"):
    """{mode: zero-argument callable doing one repeat} for the PyTorch reference."""
    tids, opt = torch.from_numpy(ids).to(device), torch_optimizer(torch, p)  # (B, T + 1)

    def train(drop):
        opt.zero_grad(set_to_none=True)
        torch_loss(torch, p, cfg, tids, drop).backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), CLIP)
        opt.step()

    def forward():
        with torch.no_grad():
            torch_loss(torch, p, cfg, tids, 0.0)

    trains = {train_mode(drop): functools.partial(train, drop) for drop in dropouts}
    return {**trains, "forward": forward,
            "generate": lambda: torch_generate(torch, p, cfg, tids[:1, :PROMPT_LEN], NEW_TOKENS)}


def time_alternately(fns, warmup, repeats, pause=0.3, sync=lambda: None):
    """Median seconds of each callable, run in turns; the order flips every repeat.

    Each turn idles `pause` seconds, calls the callable once untimed, then times a second
    call. The pause lets the thread pools of OpenBLAS and of torch's OpenMP stop spinning
    after their last job: without it each framework would run while the other's idle threads
    still hold the cores. The untimed call wakes the cores again: on a VM the first tens of
    milliseconds after an idle pause run slower, by as much as a whole tiny-preset
    generation takes, and timing them would measure the machine waking up, not the
    framework. `sync` waits for queued GPU work, inside the timed span.
    """
    times = [[] for _ in fns]
    for r in range(warmup + repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            time.sleep(pause)
            fns[i]()
            sync()
            start = time.perf_counter()
            fns[i]()
            sync()
            if r >= warmup:
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def torch_matmul_peak(torch, size=1024, seconds=0.5, device="cpu"):
    """torch's float32 (size x size) @ (size x size) GFLOP/s, as training/estimate.py measures."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.matmul(a, b, out=out)
    sync()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


# ---- the comparison, and the memory subprocesses -----------------------------------------


def check_same_loss(torch, cfg, batch, model, p, device="cpu"):
    """Same loss on one batch, float32, dropout off: the comparison is of the same model."""
    ids = batch_ids(cfg, batch, seed=1)
    ours = model.lm_loss(ids)
    with torch.no_grad():
        theirs = torch_loss(torch, p, cfg, torch.from_numpy(ids).to(device), 0.0).item()
    rel = abs(ours - theirs) / abs(theirs)
    assert rel < 1e-4, f"losses differ: minigpt1 {ours:.6f}, torch {theirs:.6f} (rel {rel:.1e})"
    return ours, theirs, rel


def memory_in_subprocess(name, framework, threads):
    """{'peak': MiB, 'before': MiB} from a fresh process that runs only one framework."""
    cmd = [sys.executable, __file__, "--presets", name, "--only", framework,
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def only(name, framework, threads):
    """The --only child: two training steps of one framework; prints its memory as JSON."""
    overrides, batch = PRESETS[name]
    cfg = GPTConfig.preset("gpt1", **overrides)
    model = GPT(cfg, seed=0)
    if framework == "torch":
        torch = import_torch()
        torch.set_num_threads(threads)
        p = torch_params(torch, model, share=True)  # no second copy of the weights
        fn = torch_steps(torch, cfg, p, batch_ids(cfg, batch))[train_mode(0.1)]
    else:
        fn = minigpt1_steps(model, batch_ids(cfg, batch), [0.1])[train_mode(0.1)]
    before = proc_status_mib("VmRSS")
    for _ in range(2):
        fn()
    peak = proc_status_mib("VmHWM")
    print(json.dumps({"peak": peak, "before": before}))


def compare(torch, name, args, peaks, threads):
    overrides, batch = PRESETS[name]
    cfg = GPTConfig.preset("gpt1", **overrides)
    model = GPT(cfg, seed=0)
    p = torch_params(torch, model)
    ours, theirs, rel = check_same_loss(torch, cfg, batch, model, p)
    print(f"\n{name}: {cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, "
          f"T={cfg.n_ctx}, V={cfg.vocab_size}, batch {batch}")
    print(f"same loss (dropout off): minigpt1 {ours:.6f}, torch {theirs:.6f}, rel {rel:.1e}")
    ids = batch_ids(cfg, batch)
    ours_fns = minigpt1_steps(model, ids, args.dropout)
    torch_fns = torch_steps(torch, cfg, p, ids, args.dropout)
    same = np.array_equal(ours_fns["generate"](), torch_fns["generate"]().numpy())
    print(f"same greedy tokens from both: {'yes' if same else 'NO'}")
    shares = len(row_shards(batch, cfg.n_ctx * cfg.n_embd))  # as model.lm_loss cuts it
    shards = len(batch_shards(range(batch), batch))  # as training cuts it
    print(f"minigpt1: forward in {shares} share{'s' * (shares > 1)} of the {batch} rows, "
          f"training in {shards} shard{'s' * (shards > 1)}")
    print(f"{'mode':<10}{'minigpt1 tok/s':>16}{'torch tok/s':>14}{'ratio':>8}"
          f"{'MFU minigpt1':>14}{'MFU torch':>11}")
    flops = flops_per_token(cfg, cfg.n_ctx)
    gen_flops = flops_per_token(cfg, PROMPT_LEN + NEW_TOKENS // 2).forward  # mean context
    per_mode = {**{train_mode(drop): (batch * cfg.n_ctx, flops.training) for drop in args.dropout},
                "forward": (batch * cfg.n_ctx, flops.forward),
                "generate": (NEW_TOKENS, gen_flops)}
    for mode in per_mode:
        fns = ours_fns[mode], torch_fns[mode]
        t_np, t_torch = time_alternately(fns, args.warmup, args.steps)
        tokens, per_token = per_mode[mode]
        rates = tokens / t_np, tokens / t_torch
        mfu = [r * per_token / 1e9 / peak for r, peak in zip(rates, peaks, strict=True)]
        print(f"{mode:<10}{rates[0]:>16,.0f}{rates[1]:>14,.0f}{rates[0] / rates[1]:>8.2f}"
              f"{mfu[0]:>14.1%}{mfu[1]:>11.1%}")
    if not args.no_memory:
        mem = [memory_in_subprocess(name, fw, threads) for fw in ("minigpt1", "torch")]
        print("train memory (MiB, own subprocess; RSS before first step -> peak VmHWM): "
              + ", ".join(f"{fw} {m['before']:,.0f} -> {m['peak']:,.0f}"
                          for fw, m in zip(("minigpt1", "torch"), mem, strict=True)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--steps", type=int, default=5, help="timed repeats per mode")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.1, 0.0],
                        help="dropout rates to time training at (default: 0.1 and 0)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--only", choices=["minigpt1", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads, source = blas_threads()
    threads = args.threads or threads
    if args.only:
        return only(args.presets[0], args.only, threads)
    torch = import_torch()
    torch.set_num_threads(threads)
    # each peak is the best of three alternating half-second rounds: one slow moment of a
    # shared machine must not set either framework's ceiling
    rounds = [(matmul_peak(), torch_matmul_peak(torch)) for _ in range(3)]
    peaks = max(r[0] for r in rounds), max(r[1] for r in rounds)
    print(f"numpy {np.__version__}, torch {torch.__version__}, float32, "
          f"{threads} threads each (NumPy BLAS via {source}; torch.set_num_threads)")
    print(f"float32 matmul peak (1024^3): numpy {peaks[0]:,.1f} GFLOP/s, "
          f"torch {peaks[1]:,.1f} GFLOP/s")
    print(f"median of {args.steps} alternating repeats after {args.warmup} warm-up; "
          f"train = fwd + bwd + clip + AdamW, forward = L1 without grads, "
          f"generate = batch 1, {PROMPT_LEN}-token prompt + {NEW_TOKENS} greedy tokens, "
          f"KV cache in both; ratio = minigpt1 / torch tokens/s")
    if openblas() is not None:
        print(f"NumPy's products: {kernels()}")
        print(f"minigpt1 runs a batch's rows in up to {threads} threads, each calling "
              "single-threaded BLAS (minigpt1/fast/batch_threads.py): its forward and its "
              "training step in shards fixed by the batch")
    for name in args.presets:
        compare(torch, name, args, peaks, threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
