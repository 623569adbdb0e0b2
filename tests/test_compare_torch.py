"""The speed benchmark's PyTorch reference computes the same function as minigpt1.

benchmarks/compare_torch.py times both; its figures mean something only if the two do the
same work. Here, on a small float64 model with dropout off: the same loss, the same gradient
of every parameter after PyTorch's autograd, and the same greedy tokens with the KV cache.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.model.generate import generate
from tests.conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare_torch  # noqa: E402


@pytest.fixture(scope="module")
def torch():
    return require("torch")


def small_model():
    cfg = GPTConfig.preset("tiny", n_layer=2, n_embd=32, n_head=4, n_ctx=20, vocab_size=50,
                           embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    model = GPT(cfg, seed=0, dtype="float64")
    rng = np.random.default_rng(1)  # away from the initial zeros and ones
    for p in model.params.values():
        p += rng.normal(0.0, 0.05, size=p.shape)
    return cfg, model


def test_same_loss_and_gradients(torch):
    cfg, model = small_model()
    ids = compare_torch.batch_ids(cfg, batch=3, seed=2)  # (3, n_ctx + 1)
    loss, grads = model.lm_loss_and_grads(ids)
    p = compare_torch.torch_params(torch, model)
    theirs = compare_torch.torch_loss(torch, p, cfg, torch.from_numpy(ids), 0.0)
    theirs.backward()
    assert theirs.item() == pytest.approx(loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(p[name].grad.numpy(), g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_same_greedy_tokens(torch):
    cfg, model = small_model()
    prompt = compare_torch.batch_ids(cfg, batch=1, seed=3)[:, :5]
    p = compare_torch.torch_params(torch, model)
    theirs = compare_torch.torch_generate(torch, p, cfg, torch.from_numpy(prompt), 12)
    np.testing.assert_array_equal(generate(model, prompt, 12, temperature=0), theirs.numpy())
