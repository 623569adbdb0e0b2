"""Which array module an array lives on, and the few helpers that must know it.

One code body serves NumPy (CPU) and CuPy (NVIDIA GPU): a function asks `xp_of(x)` for the
module of its input and calls `xp.exp`, `xp.matmul`, ... on it. Layers, blocks and the model
never import numpy or cupy themselves (a test enforces this); everything that has to pick a
module by name (creating parameters, moving them, random generators) lives here.
"""

import ctypes
import sys

import numpy

try:  # CuPy is optional: without it (or without a GPU) everything runs on NumPy.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

DEVICES = ("cpu", "cuda")


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse instead of handing it back to the system.

    A training step allocates and frees the same large arrays over and over. By default glibc
    serves every block over 128 KiB with a fresh mmap and unmaps it when freed, so each step
    pays again for the kernel to hand out and zero every page it touches: a third of a tiny
    model's step time on a 2-core VM. Raising the mmap and trim thresholds lets freed blocks be
    reused, warm. The process keeps its peak memory instead of shrinking between steps.
    One arena for every thread: the threads that share a batch's rows (threads.py) then draw
    from the same warm memory, not from fresh arenas of their own.
    Linux with glibc only; elsewhere (and if it fails) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from <malloc.h>
    settings = ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 1 << 30), (M_ARENA_MAX, 1))
    return all([libc.mallopt(option, value) for option, value in settings])


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


def fused_kernels(array):
    """The fused CUDA kernels (minigpt1.fast.cuda_kernels) for a CuPy array; None for NumPy.

    A layer asks this first: on a GPU one kernel replaces its several passes over memory; on
    the CPU it runs its NumPy lines, which stay the reference the kernels are tested against.
    """
    if cupy is None or not isinstance(array, cupy.ndarray):
        return None
    from . import cuda_kernels  # compiles nothing until a kernel is first called

    return cuda_kernels


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
