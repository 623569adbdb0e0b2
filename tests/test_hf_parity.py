"""The second oracle: PyTorch autograd through HuggingFace's OpenAIGPTLMHeadModel.

Same weights, float32: logits, the L1 loss and every parameter's gradient are compared
tensor by tensor, and transformers reads the folders `save_pretrained` writes (the other
way, folders that transformers writes, is tests/test_hf_roundtrip.py).
In CI these tests must run (torch and transformers are dev requirements); elsewhere they
skip with a reason when the libraries are absent.
"""

import os

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.gradcheck import rel_error
from tests.conftest import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directories only, never the hub

# weights 5x larger than GPT-1 initialises them: the GELUs and softmaxes work in their curved
# regime, so a wrong constant anywhere moves the logits well past the tolerance
CFG = GPTConfig(vocab_size=300, n_ctx=32, n_embd=48, n_layer=2, n_head=4, initializer_range=0.1)


@pytest.fixture(scope="module")
def torch():
    torch = require("torch")
    torch.manual_seed(0)
    return torch


@pytest.fixture(scope="module")
def hf(torch):
    return require("transformers")


def nontrivial_model(seed=0, device="cpu"):
    """Our model with biases non-zero and LayerNorm gains away from one."""
    model = GPT(CFG, seed=seed, device=device)
    rng = np.random.default_rng(seed + 100)
    for p in model.params.values():
        if p.ndim == 1:
            p += backend.to_device(rng.normal(0, 0.2, size=p.shape), device, "float32")
    return model


def hf_model(hf, torch, model):
    """A HuggingFace OpenAIGPTLMHeadModel holding a copy of our weights, in eval mode."""
    config = hf.OpenAIGPTConfig(
        vocab_size=CFG.vocab_size, n_positions=CFG.n_ctx, n_embd=CFG.n_embd,
        n_layer=CFG.n_layer, n_head=CFG.n_head, afn="gelu",
    )  # fmt: skip
    theirs = hf.OpenAIGPTLMHeadModel(config).eval()
    state = {
        f"transformer.{k}": torch.from_numpy(backend.to_numpy(v).copy())
        for k, v in model.params.items()
    }
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    assert theirs.lm_head.weight is theirs.transformer.tokens_embed.weight  # tied
    return theirs


def batch(B=3, T=12, seed=0):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, size=(B, T))


def compare(ours, theirs, tol):
    """{name: rel. error}, failing with every tensor above tol listed by name."""
    errors = {name: rel_error(ours[name], theirs[name]) for name in ours}
    bad = {name: err for name, err in errors.items() if not err < tol}
    assert not bad, "\n".join(f"{n}: rel. error {e:.2e} > {tol}" for n, e in bad.items())
    return errors


@pytest.mark.parametrize("masked", [False, True])
def test_logits_loss_and_gradients_match_pytorch(torch, hf, masked, device):
    model = nontrivial_model(device=device)
    theirs = hf_model(hf, torch, model)
    ids = batch()
    mask = np.ones_like(ids)
    if masked:
        mask[0, 5:] = 0  # padding at the end of the first sequence
        mask[2, 3] = 0
    labels = torch.from_numpy(np.where(mask == 1, ids, -100))  # HF's ignore index

    out = theirs(input_ids=torch.from_numpy(ids), labels=labels)
    out.loss.backward()
    logits = backend.to_numpy(model.forward(ids))
    loss, grads = model.lm_loss_and_grads(ids, mask)

    max_abs = np.abs(logits - out.logits.detach().numpy()).max()
    assert max_abs < 1e-4, f"logits differ by {max_abs:.2e}"
    assert abs(loss - out.loss.item()) < 1e-5, (loss, out.loss.item())
    their_grads = {
        name: p.grad.numpy()
        for name, p in theirs.named_parameters()
        if name.startswith("transformer.")
        for name in [name.removeprefix("transformer.")]
    }
    assert set(their_grads) == set(grads)
    compare(grads, their_grads, tol=1e-3)


def test_save_pretrained_is_read_by_huggingface(torch, hf, tmp_path):
    model = nontrivial_model(seed=1)
    model.save_pretrained(tmp_path)
    theirs = hf.OpenAIGPTLMHeadModel.from_pretrained(tmp_path).eval()
    ids = batch(seed=1)
    with torch.no_grad():
        their_logits = theirs(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert np.abs(model.forward(ids) - their_logits).max() < 1e-4
