"""Fixtures the robustness tests share: a small corpus with its tokenizer, trained once."""

import shutil
import time

import pytest

from minigpt1.corpus import SAMPLE_DIR
from minigpt1.pretrain import run_pretraining
from minigpt1.train import TrainConfig

SMALL = dict(batch_size=4, micro_batch_size=2, warmup_steps=4, eval_every=4, eval_windows=4,
             log_every=1, lr=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A copy of the sample corpus (pretrain caches token ids beside it) and its tokenizer,
    trained once: (text_dir, tokenizer_dir)."""
    base = tmp_path_factory.mktemp("corpus")
    shutil.copytree(SAMPLE_DIR, base / "texts")
    run_pretraining(base / "texts", base / "first", preset="tiny", n_ctx=32, vocab_size=300,
                    tcfg=TrainConfig(max_steps=1, **SMALL), progress=False)
    return base / "texts", base / "first" / "tokenizer"


def wait_for(condition, proc, timeout=60.0):
    """Poll condition() until it holds; fail if the subprocess ends or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (or hung) before it could be interrupted:\n{out}\n{err}")
        time.sleep(0.005)
