"""One code body for NumPy and CuPy: the compute modules never name an array library."""

import ast
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.gradcheck import failures, rel_error

PACKAGE = Path(__file__).resolve().parents[1] / "minigpt1"
COMPUTE_MODULES = sorted(PACKAGE.glob("layers/*.py")) + [
    PACKAGE / name for name in ("model/block.py", "model/gpt.py", "finetuning/task_model.py")
]


@pytest.mark.parametrize("path", COMPUTE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_compute_modules_do_not_import_an_array_library(path):
    """`np.exp(cupy_array)` would copy to the host or fail: these files must ask xp_of()."""
    tree = ast.parse(path.read_text(), filename=str(path))
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        banned = [n for n in names if n.split(".")[0] in ("numpy", "cupy")]
        offenders += [f"line {node.lineno}: {n}" for n in banned]
    assert not offenders, f"{path.name} imports an array library directly: {offenders}"


def test_model_moves_between_devices_and_dtypes():
    model = GPT(GPTConfig.preset("tiny"), dtype="float64")
    ids = np.random.default_rng(0).integers(0, 4096, size=(1, 6))
    logits64 = model.forward(ids)
    model.to(dtype="float32")
    assert model.params["h.0.ln_1.weight"].dtype == np.float32
    assert np.allclose(model.forward(ids), logits64, atol=1e-5)
    if backend.gpu_available():
        model.to("cuda")
        assert backend.device_of(model.params["tokens_embed.weight"]) == "cuda"
        assert np.allclose(backend.to_numpy(model.forward(ids)), logits64, atol=1e-4)
        model.to("cpu")
    assert backend.device_of(model.params["tokens_embed.weight"]) == "cpu"


def test_unknown_device_and_dtype():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        GPT(GPTConfig.preset("tiny"), device="tpu")
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        GPT(GPTConfig.preset("tiny"), dtype="float16")


@pytest.mark.skipif(backend.gpu_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_says_how_to_fix():
    with pytest.raises(RuntimeError, match="cupy"):
        GPT(GPTConfig.preset("tiny"), device="cuda")


@pytest.mark.gpu
def test_cupy_matches_numpy_in_float32():
    """NumPy is the reference; CuPy runs the same code and must agree to float32 precision."""
    if not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs this on one)")
    cfg = GPTConfig.preset("tiny")
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, 16))
    cpu, gpu = GPT(cfg, seed=0), GPT(cfg, seed=0, device="cuda")
    loss_cpu, grads_cpu = cpu.lm_loss_and_grads(ids)
    loss_gpu, grads_gpu = gpu.lm_loss_and_grads(ids)
    assert abs(loss_cpu - loss_gpu) < 1e-5
    errors = {name: rel_error(grads_gpu[name], grads_cpu[name]) for name in grads_cpu}
    bad = failures(errors, 1e-4)
    assert not bad, "CuPy gradients differ from NumPy's:\n" + bad

