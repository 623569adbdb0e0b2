"""Shared fixtures: the backends to run on, the optional PyTorch/HuggingFace oracle, and a
small corpus with its tokenizer for the tests that run whole training jobs."""

import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minigpt1 import backend
from minigpt1.corpus.text_folders import CACHE_ENV, SAMPLE_DIR
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.training.lm_objective import TrainConfig

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True, scope="session")
def token_cache(tmp_path_factory):
    """Token ids cached by any test (or its subprocesses) go to a temporary folder, never to
    the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("token-cache")))
        yield


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """Each test using this fixture runs on NumPy, and on CuPy when a GPU is present."""
    if request.param == "cuda" and not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs these on one)")
    return request.param


def require(module_name):
    """Import an optional reference library; in CI its absence is a failure, never a skip."""
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        if IN_CI:
            pytest.fail(f"{module_name} is required in CI (requirements-dev.txt): {err}")
        pytest.skip(f"{module_name} not installed (pip install -r requirements-dev.txt)")


def sample_model_folder(folder, vocab_size, **shape):
    """An untrained GPT (weights from seed 0) of this shape and a bytes BPE of the sample
    corpus's training text, saved as a model folder: what fine-tuning jobs start from."""
    from minigpt1 import GPT, GPTConfig
    from minigpt1.corpus.text_folders import load_text_dir, split_documents
    from minigpt1.tokenizer.bpe import BPETokenizer

    train, _ = split_documents(load_text_dir(SAMPLE_DIR))
    tokenizer = BPETokenizer.train(train, vocab_size=vocab_size, mode="bytes", progress=False)
    GPT(GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=128, **shape), seed=0).save_pretrained(
        folder)
    tokenizer.save(folder)
    return folder


def xp_for(device):
    return backend.module_for(device)


SMALL = dict(batch_size=4, micro_batch_size=2, warmup_steps=4, eval_every=4, eval_windows=4,
             log_every=1, lr=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A copy of the sample corpus and its tokenizer, trained once: (text_dir, tokenizer_dir)."""
    base = tmp_path_factory.mktemp("corpus")
    shutil.copytree(SAMPLE_DIR, base / "texts")
    run_pretraining(PretrainPlan(base / "texts", base / "first", "tiny", TrainConfig(
        max_steps=1, **SMALL), n_ctx=32, vocab_size=300), progress=False)
    return base / "texts", base / "first" / "tokenizer"


def wait_for(condition, proc, timeout=60.0):
    """Poll condition() until it holds; fail if the subprocess ends or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (or hung) before it could be interrupted:\n{out}\n{err}")
        time.sleep(0.005)


ROOT = Path(__file__).resolve().parents[1]


def start_minigpt1(*args):
    """`python -m minigpt1 ARGS` in a fresh process from the checkout, started, not waited for;
    stdout and stderr piped as text."""
    return subprocess.Popen([sys.executable, "-m", "minigpt1", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
