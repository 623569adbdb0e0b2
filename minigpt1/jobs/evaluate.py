"""`python -m minigpt1 evaluate`: a model's language-modelling loss on a corpus's held-out split.

The held-out split is the one pre-training validates on (split_documents: the last 10% of
every work). The text is cut into consecutive windows of n_ctx + 1 tokens that overlap by one
(eval_windows), so every held-out token but the first is predicted exactly once, and the mean
loss L (nats per token) turns into numbers that compare across tokenizers:

    bits per character = L * tokens / characters / ln 2
    bits per byte      = L * tokens / UTF-8 bytes / ln 2
"""

import math
from dataclasses import dataclass

from tqdm import tqdm

from ..corpus.text_folders import (
    chars_and_bytes,
    encode_texts,
    eval_windows,
    load_text_dir,
    split_documents,
)
from .run_folder import load_model


@dataclass
class HeldOutScore:
    nats_per_token: float
    bits_per_char: float
    bits_per_byte: float
    tokens: int  # held-out tokens
    chars: int  # held-out characters
    windows: int  # windows of n_ctx + 1 tokens scored


def score_held_out(model, tokenizer, text_dir, batch_size=8, progress=True):
    """The model's loss on every window of the held-out split of the texts in text_dir."""
    val_texts = split_documents(load_text_dir(text_dir))[1]
    ids = encode_texts(val_texts, tokenizer)  # (N,)
    windows = eval_windows(ids, model.cfg.n_ctx + 1)  # (W, n_ctx + 1)
    total, count = 0.0, 0
    for start in tqdm(range(0, len(windows), batch_size), desc="held-out windows",
                      unit="batch", disable=not progress, dynamic_ncols=True):
        batch = windows[start : start + batch_size]  # (B, n_ctx + 1)
        total += model.lm_loss(batch) * len(batch)  # every window holds n_ctx targets
        count += len(batch)
    loss = total / count
    chars, nbytes = chars_and_bytes(val_texts)
    return HeldOutScore(loss, loss * len(ids) / chars / math.log(2),
                        loss * len(ids) / nbytes / math.log(2), len(ids), chars, len(windows))


def evaluate_checkpoint(checkpoint, text_dir, which="best", batch_size=8, progress=True):
    """score_held_out for a run folder's checkpoint (`which`) or a model folder."""
    model, tokenizer = load_model(checkpoint, which)
    return score_held_out(model, tokenizer, text_dir, batch_size, progress)
