"""The demo: pre-train GPT-1's small cousin on Shakespeare on a laptop CPU and watch it learn.

One command, no arguments: prepare the corpus (offline, the project's sample corpus stands
in), train a BPE tokenizer once (cached), print what the untrained model writes, pre-train
the `small` preset for a fixed wall-clock budget, print what it writes now, and leave the
loss curves, the learning-rate schedule, attention maps and a summary in runs/<name>/.
"""

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import GPTConfig
from ..corpus.text_folders import load_text_dir, split_documents
from ..fileio import write_text_atomic
from ..model.generate import generate
from ..model.gpt import GPT
from ..plots import plot_attention
from ..tokenizer.bpe import BPETokenizer
from ..training.lm_objective import TrainConfig
from .pretrain import PretrainPlan, run_pretraining
from .run_folder import default_corpus

PROMPT = "Romeo.\n"


def cached_tokenizer(text_dir, vocab_size, mode, cache_root):
    """A tokenizer trained on text_dir's training split, trained once and then reused."""
    train_texts, _ = split_documents(load_text_dir(text_dir))
    digest = hashlib.sha256("\0".join(train_texts).encode()).hexdigest()[:12]
    folder = Path(cache_root) / f"{mode}-{vocab_size}-{digest}"
    if not (folder / "vocab.json").exists():
        print(f"training a {mode} BPE tokenizer with {vocab_size:,} tokens (once; cached in "
              f"{folder})")
        BPETokenizer.train(train_texts, vocab_size, mode=mode).save(folder)
    return folder


def sample(model, tokenizer, prompt=PROMPT, tokens=120, seed=0):
    ids = generate(model, [tokenizer.encode(prompt)], tokens, temperature=0.8, top_k=40,
                   seed=seed)
    return tokenizer.decode(ids[0].tolist())


def write_summary(run_dir, result, cfg, before, after, tcfg):
    unit = "byte" if result["tokenizer"].mode == "bytes" else "char"
    lines = [
        f"# {run_dir.name}",
        "",
        f"- model: {cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, n_ctx={cfg.n_ctx}, "
        f"vocabulary {cfg.vocab_size:,}",
        f"- budget: {tcfg.minutes or 'no limit on'} minutes, {result['steps']} updates, "
        f"{result['tokens_per_s']:,.0f} training tokens/s",
        f"- validation loss: {result['val_loss']:.3f} nats per token, "
        f"{result[f'val_bits_per_{unit}']:.3f} bits per {unit}",
        "",
        "## Before training", "", "```", before, "```", "",
        "## After training", "", "```", after, "```", "",
        "Figures: loss.png, lr.png, attention.png",
    ]  # fmt: skip
    write_text_atomic(run_dir / "summary.md", "\n".join(lines) + "\n")


def demo_train_config(minutes, seed=0):
    """TrainConfig's defaults (found by experiment, see README, Results), run for `minutes`."""
    return TrainConfig(max_steps=10**6, minutes=minutes, seed=seed)


@dataclass
class DemoPlan:
    """What `python -m minigpt1 demo` runs (cli.py builds it from the flags)."""

    preset: str = "small"  # the model's size: tiny | small | gpt1
    out: str | Path | None = None  # the run folder (default runs/demo-<time>)
    data_dir: str | Path = "data"  # where corpora, tokenizers and token-id caches live
    text_dir: str | Path | None = None  # texts to train on (default: Shakespeare)
    vocab_size: int | None = None  # BPE vocabulary (default: the preset's)
    bpe_mode: str = "bytes"  # bytes | gpt1
    train: TrainConfig = field(default_factory=lambda: demo_train_config(10.0))  # its seed too


def run_demo(plan):
    """Run the whole demo; returns the pre-training summary (see pretrain.run_pretraining)."""
    text_dir = Path(plan.text_dir) if plan.text_dir else default_corpus(plan.data_dir)
    vocab_size = plan.vocab_size or GPTConfig.preset(plan.preset).vocab_size
    data_dir, seed = Path(plan.data_dir), plan.train.seed
    tokenizer_dir = cached_tokenizer(text_dir, vocab_size, plan.bpe_mode, data_dir / "tokenizers")
    tokenizer = BPETokenizer.load(tokenizer_dir)
    run_dir = Path(plan.out) if plan.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cfg = GPTConfig.preset(plan.preset, vocab_size=tokenizer.vocab_size)
    before = sample(GPT(cfg, seed=seed), tokenizer, seed=seed)
    print(f"--- the untrained model writes ---\n{before}\n---")
    result = run_pretraining(PretrainPlan(text_dir, run_dir, plan.preset, plan.train,
                                          tokenizer_dir=tokenizer_dir,
                                          cache_dir=data_dir / "cache"))
    model = result["model"]
    after = sample(model, tokenizer, seed=seed)
    print(f"--- after {result['steps']} updates it writes ---\n{after}\n---")
    question = PROMPT + "What say you"
    plot_attention(model.attention_maps([tokenizer.encode(question)]), tokenizer.tokens(question),
                   run_dir / "attention.png", layers=[0, cfg.n_layer - 1])
    write_summary(run_dir, result, cfg, before, after, plan.train)
    print(f"summary, plots and checkpoints: {run_dir}/")
    return result
