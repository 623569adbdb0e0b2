"""The demo: pre-train GPT-1's small cousin on Shakespeare on a laptop CPU and watch it learn.

One command, no arguments: prepare the corpus (offline, the project's sample corpus stands
in), train a BPE tokenizer once (cached), print what the untrained model writes, pre-train
the `small` preset for a fixed wall-clock budget, print what it writes now, and leave the
loss curves, the learning-rate schedule, attention maps and a summary in runs/<name>/.
"""

import hashlib
import time
from pathlib import Path

from ..config import GPTConfig
from ..corpus.shakespeare import prepare_shakespeare
from ..corpus.texts import SAMPLE_DIR, load_text_dir, split_documents
from ..fileio import write_text_atomic
from ..model.generate import generate
from ..model.gpt import GPT
from ..plots import plot_attention
from ..tokenizer.bpe import BPETokenizer
from ..training.lm_objective import TrainConfig
from .pretrain import run_pretraining

PROMPT = "Romeo.\n"


def default_corpus(data_dir):
    """The prepared Shakespeare folder; the sample corpus, with a visible note, when offline."""
    try:
        return prepare_shakespeare(data_dir, progress=False)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"NOTE: could not prepare Shakespeare ({err}).\n"
              f"NOTE: using the small sample corpus in {SAMPLE_DIR} instead.")
        return SAMPLE_DIR


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


def run_demo(minutes=10.0, preset="small", out=None, data_dir="data", text_dir=None,
             vocab_size=None, bpe_mode="bytes", tcfg=None, seed=0):
    """Run the whole demo; returns the pre-training summary (see pretrain.run_pretraining)."""
    text_dir = Path(text_dir) if text_dir else default_corpus(data_dir)
    vocab_size = vocab_size or GPTConfig.preset(preset).vocab_size
    tokenizer_dir = cached_tokenizer(text_dir, vocab_size, bpe_mode, Path(data_dir) / "tokenizers")
    tokenizer = BPETokenizer.load(tokenizer_dir)
    run_dir = Path(out) if out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cfg = GPTConfig.preset(preset, vocab_size=tokenizer.vocab_size)
    before = sample(GPT(cfg, seed=seed), tokenizer, seed=seed)
    print(f"--- the untrained model writes ---\n{before}\n---")
    tcfg = tcfg or demo_train_config(minutes, seed)
    result = run_pretraining(text_dir, run_dir, preset, tcfg, tokenizer_dir=tokenizer_dir,
                             cache_dir=Path(data_dir) / "cache")
    model = result["model"]
    after = sample(model, tokenizer, seed=seed)
    print(f"--- after {result['steps']} updates it writes ---\n{after}\n---")
    question = PROMPT + "What say you"
    plot_attention(model.attention_maps([tokenizer.encode(question)]), tokenizer.tokens(question),
                   run_dir / "attention.png", layers=[0, cfg.n_layer - 1])
    write_summary(run_dir, result, cfg, before, after, tcfg)
    print(f"summary, plots and checkpoints: {run_dir}/")
    return result
