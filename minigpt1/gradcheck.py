"""Gradient checking by central finite differences, for the tests and the lessons.

For a scalar function f of an array x, each partial derivative is estimated by

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)

whose error is O(h^2) (plus rounding of order eps * |f| / h). In float64 with h = 1e-5 both
terms are around 1e-10, so a correct backward pass agrees to about 1e-8 relative or better;
in float32 rounding alone would be ~1e-2, which is why checks always run in float64.

A layer's output is usually an array, not a scalar. We check it along a random upstream
gradient dy: f(x) = sum(layer(x) * dy), whose exact gradient is what backward(dy) returns.
A random dy (never all ones) makes errors in any output element visible.

The error reported per tensor is max|a - n| / max(1e-8, max|a| + max|n|) (analytic a,
numerical n): relative to the tensor's scale, so tiny entries near zero don't dominate.
"""

import numpy

from .backend import device_of, to_device, to_numpy


def rel_error(analytic, numerical):
    """Scale-relative error between two gradient arrays: 0 when equal, ~1 when unrelated."""
    a, n = to_numpy(analytic), to_numpy(numerical)
    scale = max(1e-8, float(abs(a).max(initial=0.0) + abs(n).max(initial=0.0)))
    return float(abs(a - n).max(initial=0.0)) / scale


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar function f() with respect to the array x.

    f takes no arguments and reads x, which this function perturbs in place, one entry at a
    time, and always restores. `indices` (flat positions) limits the work to some entries;
    the result then holds those entries only, in that order.
    """
    flat = x.reshape(-1)  # a view: writing to it writes to x
    if indices is None:
        indices = range(flat.size)
    grad = []
    for i in indices:
        old = flat[i].item()
        flat[i] = old + h
        f_plus = float(f())
        flat[i] = old - h
        f_minus = float(f())
        flat[i] = old  # restore
        grad.append((f_plus - f_minus) / (2 * h))
    return numpy.array(grad)


def check_layer(forward, backward, inputs, seed=0, h=1e-5):
    """Gradient check of a `forward(*inputs) -> (y, cache)` / `backward(dy, cache)` pair.

    `inputs` is a dict {name: float64 array}, passed to forward positionally in that order;
    backward must return one gradient per input, in the same order (or a single array for a
    single input). Returns {name: relative error}.
    """
    names = list(inputs)
    y, cache = forward(*inputs.values())
    # a stream of its own: inputs drawn from default_rng(seed) must not come back as dy
    # (with x == dy, LayerNorm's dx is nearly zero and the check would prove little)
    rng = numpy.random.default_rng([seed, 0xD1])
    dy_host = rng.standard_normal(numpy.shape(y))  # the random upstream gradient
    dy = float(dy_host) if numpy.ndim(y) == 0 else to_device(dy_host, device_of(y))
    analytic = backward(dy, cache)
    if len(names) == 1 and not isinstance(analytic, tuple):
        analytic = (analytic,)

    def f():
        return numpy.sum(to_numpy(forward(*inputs.values())[0]) * dy_host)

    errors = {}
    for name, grad in zip(names, analytic, strict=True):
        errors[name] = rel_error(grad, numerical_gradient(f, inputs[name], h).reshape(grad.shape))
    return errors


def check_sampled(loss, params, grads, samples=6, seed=0, h=1e-5):
    """Check `grads` of the scalar `loss()` at a few random entries of every tensor in `params`.

    `loss` takes no arguments and must read `params` (modified in place and restored). Half of
    the entries are drawn where the analytic gradient is non-zero (a position embedding row
    past the sequence length, say, is rightly zero and would prove nothing), half uniformly.
    The error is relative to the scale of the whole analytic tensor.
    Returns {name: relative error over the sampled entries}.
    """
    rng = numpy.random.default_rng(seed)
    errors = {}
    for name, x in params.items():
        analytic = to_numpy(grads[name]).reshape(-1)
        nonzero = numpy.flatnonzero(analytic)
        idx = numpy.concatenate([
            rng.choice(nonzero, size=min(samples // 2, nonzero.size), replace=False),
            rng.choice(x.size, size=min(samples - samples // 2, x.size), replace=False),
        ])
        numerical = numerical_gradient(loss, x, h, idx)
        scale = max(1e-8, float(abs(analytic).max()) + float(abs(numerical).max()))
        errors[name] = float(abs(analytic[idx] - numerical).max()) / scale
    return errors


def failures(errors, tol):
    """The entries of {name: error} that are not below tol, formatted one per line."""
    return "\n".join(f"  {name}: rel. error {err:.2e} (tolerance {tol:.0e})"
                     for name, err in errors.items() if not err < tol)
