"""Shared fixtures: the backends to run on, and the optional PyTorch/HuggingFace oracle."""

import importlib
import os

import pytest

from minigpt1 import backend

IN_CI = os.environ.get("CI") == "true"


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


def xp_for(device):
    return backend.module_for(device)
