"""Pre-training quality for a fixed wall-clock budget: validation bits per character.

    python benchmarks/pretrain_quality.py                    # 10 minutes of minigpt1
    python benchmarks/pretrain_quality.py --reference        # ... then 10 of the reference
    python benchmarks/pretrain_quality.py --minutes 3 --preset small --vocab-size 4096

minigpt1 trains on the complete works of Shakespeare (the last 10% of every work held out)
with a byte-level BPE tokenizer, for the given minutes on this machine's CPU, and reports the
validation loss as bits per character of the original text: nats per token x tokens / chars
/ ln 2, over every held-out character.

--reference trains, on the same split and for the same minutes, the model the target was set
against: nanoGPT's character-level Shakespeare configuration for CPUs (4 layers, 4 heads,
C=128, context 64, batch 12, pre-LN, no dropout, AdamW lr 1e-3 with warm-up and cosine decay
to 1e-4, betas 0.9/0.99, weight decay 0.1, clipping 1.0), written here in a few lines of
PyTorch. Its figure prints beside ours.
"""

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minigpt1.config import GPTConfig  # noqa: E402
from minigpt1.corpus.shakespeare import prepare_shakespeare  # noqa: E402
from minigpt1.corpus.text_folders import chars_and_bytes, load_text_dir, split_documents  # noqa: E402
from minigpt1.fast.process import tune_process  # noqa: E402
from minigpt1.jobs.demo import cached_tokenizer, demo_train_config  # noqa: E402
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining  # noqa: E402

tune_process()  # the allocator and BLAS settings of `python -m minigpt1` (fast/process.py)


def ours(args, text_dir):
    tokenizer_dir = cached_tokenizer(text_dir, args.vocab_size, "bytes", ROOT / "data/tokenizers")
    tcfg = demo_train_config(args.minutes)  # the demo's settings: batch 8, lr 1e-3, ...
    tcfg.eval_every, tcfg.eval_windows = 10**9, 10**9  # evaluate once, at the end, on all of it
    result = run_pretraining(PretrainPlan(text_dir, ROOT / "runs" / "pretrain-quality",
                                          args.preset, tcfg, tokenizer_dir, force=True,
                                          cache_dir=ROOT / "data" / "cache"))
    # bytes mode reports bits per byte; convert to per character of the original text
    val_texts = split_documents(load_text_dir(text_dir))[1]
    chars, nbytes = chars_and_bytes(val_texts)
    return result["val_bits_per_byte"] * nbytes / chars, result


def reference(minutes, text_dir, seed=0):
    """nanoGPT's CPU character-level Shakespeare run, trained for `minutes`."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    train_texts, val_texts = split_documents(load_text_dir(text_dir))
    chars = sorted(set("".join(train_texts + val_texts)))
    index = {c: i for i, c in enumerate(chars)}
    train = torch.tensor([index[c] for c in "".join(train_texts)])
    val = torch.tensor([index[c] for c in "".join(val_texts)])
    V, C, L, H, T, B = len(chars), 128, 4, 4, 64, 12

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

        def forward(self, x):
            q, k, v = self.qkv(self.ln1(x)).view(x.shape[0], -1, 3, H, C // H).unbind(2)
            y = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)),
                                               is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(x.shape))
            return x + self.mlp(self.ln2(x))

    class CharGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, C), nn.Embedding(T, C)
            self.blocks = nn.Sequential(*[Block() for _ in range(L)])
            self.ln, self.head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
            self.head.weight = self.tok.weight

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            return self.head(self.ln(self.blocks(x)))

    model = CharGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def lr_at(it, total):
        if it < 100:
            return 1e-3 * (it + 1) / 101
        progress = min(1.0, (it - 100) / max(1, total - 100))
        return 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * progress))

    budget, start, it, total = minutes * 60, time.perf_counter(), 0, 10**9
    while it < total:
        starts = torch.randint(len(train) - T - 1, (B,))
        x = torch.stack([train[s : s + T] for s in starts])
        y = torch.stack([train[s + 1 : s + T + 1] for s in starts])
        for group in opt.param_groups:
            group["lr"] = lr_at(it, total)
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        it += 1
        if it == 50:  # fit the schedule to the budget, as minigpt1 does
            total = int(0.95 * budget / ((time.perf_counter() - start) / 50))
    model.eval()
    with torch.no_grad():  # every held-out character predicted once: windows overlap by one
        n = (len(val) - 1) // T
        nll = sum(F.cross_entropy(model(val[i * T : i * T + T][None]).view(-1, V),
                                  val[i * T + 1 : i * T + T + 1], reduction="sum").item()
                  for i in range(n))
    return nll / (n * T) / math.log(2), it


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--reference", action="store_true", help="also train the reference")
    args = parser.parse_args(argv)

    text_dir = prepare_shakespeare(ROOT / "data")
    args.vocab_size = args.vocab_size or GPTConfig.preset(args.preset).vocab_size
    bpc, result = ours(args, text_dir)
    rows = [("minigpt1 " + args.preset, bpc, result["steps"])]
    if args.reference:
        ref_bpc, ref_steps = reference(args.minutes, text_dir)
        rows.append(("nanoGPT char (PyTorch)", ref_bpc, ref_steps))
    print(f"\nvalidation bits per character after {args.minutes:g} minutes (CPU, same split)")
    print(f"{'model':<26}{'bits/char':>10}{'updates':>10}")
    for name, value, steps in rows:
        print(f"{name:<26}{value:>10.3f}{steps:>10,}")
    cfg, tcfg = result["model"].cfg, demo_train_config(args.minutes)
    print(f"minigpt1 settings: preset {args.preset} ({cfg.n_layer} layers, C={cfg.n_embd}, "
          f"n_ctx={cfg.n_ctx}, dropout {cfg.resid_pdrop}), bytes BPE {cfg.vocab_size}, "
          f"batch {tcfg.batch_size}, lr {tcfg.lr}, warm-up {tcfg.warmup_steps}, "
          f"{result['tokens_per_s']:,.0f} tokens/s")
    print(f"target: at most 1.75 bits/char: {'met' if bpc <= 1.75 else 'MISSED'}")


if __name__ == "__main__":
    main()
