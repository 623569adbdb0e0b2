"""Which array module an array lives on, and the few helpers that must know it.

One code body serves NumPy (CPU) and CuPy (NVIDIA GPU): a function asks `xp_of(x)` for the
module of its input and calls `xp.exp`, `xp.matmul`, ... on it. Layers, blocks and the model
never import numpy or cupy themselves (a test enforces this); everything that has to pick a
module by name (creating parameters, moving them, random generators) lives here.
"""

import functools

import numpy

try:  # CuPy is optional: without it (or without a GPU) everything runs on NumPy.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

DEVICES = ("cpu", "cuda")


DTYPES = ("float32", "float64")


def gpu_available():
    """True when CuPy is importable and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed but no driver / no device
        return False


def xp_of(*arrays):
    """The array module (numpy or cupy) of the given arrays."""
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return numpy


FAST_PATHS = {}  # (plain function's name, device) -> the function that replaces it there
PLAIN = {}  # name -> the plain function, for each function decorated with fast_path


def fast_path(function):
    """Let a faster version of this plain function take over where one is registered.

    A call runs FAST_PATHS[(name, device)] when minigpt1/fast/ registered one for the device
    of the first argument ("cuda" for a CuPy array, else "cpu"), and the plain body otherwise.
    The plain body stays reachable as `.plain`: it is the reference the fast paths are tested
    against (tests/test_fast_paths.py), and what the lessons read.
    """
    name = function.__name__
    if name in PLAIN:
        raise ValueError(f"two plain functions named {name!r}: fast paths find them by name")
    PLAIN[name] = function
    cpu, cuda = (name, "cpu"), (name, "cuda")

    @functools.wraps(function)
    def dispatch(*args, **kwargs):
        on_gpu = cupy is not None and isinstance(args[0], cupy.ndarray)
        return FAST_PATHS.get(cuda if on_gpu else cpu, function)(*args, **kwargs)

    dispatch.plain = function
    return dispatch


def register_fast_path(name, device, function):
    """Run `function` instead of the plain function `name` on `device` ("cpu" or "cuda")."""
    check_device(device)
    if (name, device) in FAST_PATHS:
        raise ValueError(f"a fast path for {name!r} on {device} is registered already")
    FAST_PATHS[name, device] = function


def module_for(device):
    """The array module that holds arrays on `device` ("cpu" or "cuda")."""
    check_device(device)
    if device == "cpu":
        return numpy
    if not gpu_available():
        raise RuntimeError(
            "device='cuda' needs CuPy and an NVIDIA GPU; install cupy-cuda12x "
            "(pip install -e .[gpu]) or use device='cpu'"
        )
    return cupy


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")


def check_dtype(dtype):
    if str(dtype) not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {DTYPES}")
    return str(dtype)


def device_of(array):
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    return "cuda" if xp_of(array) is not numpy else "cpu"


def to_device(array, device, dtype=None):
    """Copy (or view) `array` onto `device`, optionally casting to `dtype`."""
    xp = module_for(device)
    if xp is numpy and cupy is not None and isinstance(array, cupy.ndarray):
        array = array.get()
    return xp.asarray(array, dtype=dtype)


def to_numpy(array):
    """A NumPy copy (or view) of any array, for saving, printing and plotting."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return array.get()
    return numpy.asarray(array)


def host_rng(seed):
    """A seeded NumPy generator, used to draw initial weights identically on every device."""
    return numpy.random.default_rng(seed)


def device_rng(device, seed):
    """A seeded random generator that draws on `device` (dropout masks are made there)."""
    xp = module_for(device)
    return xp.random.default_rng(seed)
