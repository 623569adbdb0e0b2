"""A first demo: train a tiny GPT on a short text, byte by byte, and watch the loss fall.

It runs in about half a minute on a laptop CPU and uses nothing but the model, the
optimizer and the schedule: the text's UTF-8 bytes are the tokens (vocabulary of 256),
random windows of it are the batches, and the last tenth of the text is held out to show
that the model learns the language of the text, not just the windows it saw.

Expect the loss to sit near 3 nats for a hundred steps or so: the model first learns how
often each byte occurs (the unigram plateau), and only then starts to use the bytes before
each position. That escape from the plateau is the moment to watch.
"""

import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .config import GPTConfig
from .model import GPT, parameter_count
from .optim import AdamW, clip_grad_norm, warmup_cosine

SAMPLE_TEXT = Path(__file__).resolve().parents[1] / "data" / "sample.txt"


def random_windows(data, batch_size, length, rng):
    """(batch_size, length) windows cut at random offsets from the 1-D token array `data`."""
    starts = rng.integers(0, len(data) - length + 1, size=batch_size)
    return np.stack([data[s : s + length] for s in starts])


def evaluate(model, data, length):
    """Mean L1 over consecutive windows covering `data` (dropout off)."""
    n = len(data) // length
    windows = data[: n * length].reshape(n, length)
    return model.lm_loss_and_grads(windows)[0]


def run_demo(steps=300, seed=0, batch_size=16, text_path=SAMPLE_TEXT, log_every=50, lr=1e-3):
    text = Path(text_path).read_text(encoding="utf-8")
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    cfg = GPTConfig.preset("tiny", vocab_size=256, n_ctx=64, n_layer=2)
    model = GPT(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    opt = AdamW(model.params, lr=lr)
    print(f"text: {text_path} ({len(data):,} bytes; {len(train):,} train, {len(val):,} held out)")
    print(f"model: 2 layers of the tiny preset on bytes, {parameter_count(cfg):,} parameters")
    val_start = evaluate(model, val, cfg.n_ctx)
    print(f"held-out loss before training: {val_start:.3f} nats/byte "
          f"(a uniform guess: {math.log(256):.3f})")
    tokens, started = 0, time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc="training", unit="step")
    for step in bar:
        lr_now = warmup_cosine(step - 1, lr, warmup_steps=steps // 10, total_steps=steps)
        ids = random_windows(train, batch_size, cfg.n_ctx, rng)
        loss, grads = model.lm_loss_and_grads(ids, train=True)
        clip_grad_norm(grads, 1.0)
        opt.step(grads, lr=lr_now)
        tokens += ids.size
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr_now:.1e}")
        if step % log_every == 0 or step == steps:
            rate = tokens / (time.perf_counter() - started)
            tqdm.write(f"step {step:4d}  train loss {loss:.3f}  lr {lr_now:.2e}  "
                       f"{rate:,.0f} tokens/s")
    val_end = evaluate(model, val, cfg.n_ctx)
    print(f"held-out loss after {steps} steps: {val_end:.3f} nats/byte "
          f"({val_end / math.log(2):.2f} bits/byte; it started at {val_start:.3f})")
    return val_start, val_end
