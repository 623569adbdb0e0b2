"""AdamW's update on the CPU: the same formulas in fewer passes, slice by slice, in place.

training/optim.py's adamw_update writes the textbook formulas; each NumPy operator there is
a pass over the whole parameter and a new temporary as large as it. Here:
- the formulas are rearranged for fewer operations: m += (1 - b1)(g - m), and the bias
  corrections folded into two scalars (folded_scalars), so that
      p = decay p - step_size m / (sqrt(v) + eps_hat);
- the parameter is updated in slices of SLICE elements, so that a slice of p, g, m, v and the
  scratch (1.3 MB in float32) stays in cache across the operations on it;
- every temporary lives in one scratch slice per thread and dtype, reused by every update;
- a large parameter is updated by every core, each its own part of it.
"""

import math
import threading

import numpy

from ..backend import register_fast_path
from .batch_threads import blas_threads, fixed_parts, map_dealt

SLICE = 1 << 16  # elements per slice
THREAD_SLICE = 1 << 18  # per slice in threads: each NumPy call takes the GIL back, and two
#                         threads that do so every few microseconds wait for each other
MIN_SPLIT = 1 << 20  # elements a parameter needs to pay for waking a second thread

_workspace = threading.local()  # each thread's scratch slices, one per dtype


def folded_scalars(t, lr, betas, eps, weight_decay):
    """(decay, step_size, eps_hat) with p = decay p - step_size m / (sqrt(v) + eps_hat):
    the update of adamw_update, multiplied through by sqrt(1 - b2^t)."""
    b1, b2 = betas
    bias1, bias2 = 1.0 - b1**t, 1.0 - b2**t  # correct m's and v's start at zero
    return 1.0 - lr * weight_decay, lr * math.sqrt(bias2) / bias1, eps * math.sqrt(bias2)


def scratch(dtype):
    """This thread's scratch slice for `dtype` (THREAD_SLICE elements), made on first use."""
    buffers = vars(_workspace).setdefault("buffers", {})
    if dtype not in buffers:
        buffers[dtype] = numpy.empty(THREAD_SLICE, dtype=dtype)
    return buffers[dtype]


def adamw_update_in_slices(p, g, m, v, t, lr, betas, eps, weight_decay):
    """adamw_update for contiguous NumPy arrays p, m, v (g may be any array of p's shape).

    A large parameter is cut in one part per core, each updated by a thread: every element's
    update is the same whichever thread makes it."""
    scalars = folded_scalars(t, lr, betas, eps, weight_decay)
    flat = [a.reshape(-1) for a in (p, g, m, v)]  # views of p, m, v: updated in place
    threads = blas_threads() if p.size >= MIN_SPLIT else 1
    parts = fixed_parts(p.size, threads)
    slice_size = SLICE if threads == 1 else THREAD_SLICE
    map_dealt(lambda part: update_part(flat, part, slice_size, betas, scalars), parts, threads)


def update_part(flat, part, slice_size, betas, scalars):
    """The elements `part` (a slice) of the flat p, g, m, v, slice by slice."""
    tmp = scratch(flat[0].dtype)
    for start in range(part.start, part.stop, slice_size):
        stop = min(start + slice_size, part.stop)
        update_slice(*(a[start:stop] for a in flat), tmp[: stop - start], betas, *scalars)


def update_slice(p, g, m, v, tmp, betas, decay, step_size, eps_hat):
    """One flat slice, in place, with tmp (the slice's size) as the only workspace."""
    b1, b2 = betas
    numpy.subtract(g, m, out=tmp)  # m = b1 m + (1 - b1) g
    tmp *= 1.0 - b1
    m += tmp
    numpy.multiply(g, g, out=tmp)  # v = b2 v + (1 - b2) g^2
    tmp *= 1.0 - b2
    v *= b2
    v += tmp
    if decay != 1.0:
        p *= decay  # decoupled weight decay
    numpy.sqrt(v, out=tmp)  # the Adam step
    tmp += eps_hat
    numpy.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp


register_fast_path("adamw_update", "cpu", adamw_update_in_slices)
