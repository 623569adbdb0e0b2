"""Fused CuPy kernels for the GPU path: the same math as the plain layers, fewer passes.

Every NumPy line such as `u *= GELU_COEF` is one pass over memory: read an array, write one
back. GELU's forward makes about eight such passes, LayerNorm's seven, the masked softmax six,
an AdamW update up to thirteen. On a GPU these element-wise operations are limited by memory
bandwidth, not by arithmetic: their time is set by the number of passes. A fused kernel reads
its inputs once, keeps every intermediate in registers, and writes its outputs once:

    gelu_forward        x -> y, tanh(u)                     ElementwiseKernel, one pass
    gelu_backward       dy, x, tanh(u) -> dx                ElementwiseKernel, one pass
    adamw_update        g -> p, m, v (in place)             ElementwiseKernel, one pass
    layernorm_forward   x (N, C) -> y, xhat, rstd           row kernel, one launch
    layernorm_backward  dy, xhat, rstd (N, C) -> dx         row kernel, one launch
    causal_softmax      scores (B, nh, Tq, Tk), in place    row kernel, one launch

Each is registered as the GPU fast path of the plain function of the same name (layers/,
training/optim.py), through a thin adapter that takes that function's arguments and returns
exactly what it returns; fast/__init__.py imports this module only when CuPy is installed.

Element-wise kernels are written as the loop body over one element; CuPy generates the loop
and compiles one version per dtype (the placeholder T is float or double). Row kernels need
the whole row (a mean, a max, a sum) before they can write anything: one block of threads
takes one row, each thread walks the row with a stride of blockDim.x, and the block combines
its partial results in shared memory. A row is read two or three times, but by the same block
right after itself, so the repeats mostly hit the cache. The row kernels are C++ templates,
compiled for float and double in one RawModule.
"""

import functools

import cupy
import numpy

from ..backend import register_fast_path
from ..layers.gelu import GELU_COEF, SQRT_2_OVER_PI, GeluCache
from ..layers.layernorm import LayerNormCache
from .adamw import folded_scalars

MAX_THREADS = 256  # threads per row block: a power of two, the size of the shared buffer

_GELU_FORWARD = cupy.ElementwiseKernel(
    "T x",
    "T y, T tanh_u",
    f"""
    const T t = tanh(T({SQRT_2_OVER_PI!r}) * (x + T({GELU_COEF!r}) * x * x * x));
    tanh_u = t;
    y = T(0.5) * x * (T(1) + t);
    """,
    "minigpt1_gelu_forward",
)

_GELU_BACKWARD = cupy.ElementwiseKernel(
    "T dy, T x, T tanh_u",
    "T dx",
    f"""
    const T du_dx = T({SQRT_2_OVER_PI!r}) * (T(1) + T({3.0 * GELU_COEF!r}) * x * x);
    dx = dy * (T(0.5) * (T(1) + tanh_u) + T(0.5) * x * (T(1) - tanh_u * tanh_u) * du_dx);
    """,
    "minigpt1_gelu_backward",
)

# p, m and v are outputs, so CuPy binds them by reference: the body reads and writes them.
_ADAMW_UPDATE = cupy.ElementwiseKernel(
    "T g, T one_minus_b1, T b2, T one_minus_b2, T decay, T step_size, T eps",
    "T p, T m, T v",
    """
    m += one_minus_b1 * (g - m);
    v = b2 * v + one_minus_b2 * (g * g);
    p = p * decay - step_size * (m / (sqrt(v) + eps));
    """,
    "minigpt1_adamw_update",
    no_return=True,
)

_ROW_SOURCE = r"""
// Every kernel here: one block per row, blockDim.x a power of two <= MAX_THREADS.

// block_sum, block_max: the sum, the max of v over the block's threads, given to every thread.
template <typename T>
__device__ T block_sum(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {  // halve the active threads each round
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    const T total = buf[0];
    __syncthreads();  // everyone has read buf[0] before the next reduction overwrites it
    return total;
}

template <typename T>
__device__ T block_max(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s && buf[threadIdx.x + s] > buf[threadIdx.x])
            buf[threadIdx.x] = buf[threadIdx.x + s];
        __syncthreads();
    }
    const T best = buf[0];
    __syncthreads();
    return best;
}

// x, y, xhat: (N, C)   weight, bias: (C,)   rstd: (N,)
template <typename T>
__global__ void layernorm_forward(const T* x, const T* weight, const T* bias, T eps, int C,
                                  T* y, T* xhat, T* rstd) {
    __shared__ T buf[MAX_THREADS];
    const size_t row = blockIdx.x;
    x += row * C;
    y += row * C;
    xhat += row * C;
    T sum = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sum += x[c];
    const T mu = block_sum(sum, buf) / C;
    T sq = 0;  // a second pass over the centred values: no cancellation in E[x^2] - mu^2
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const T d = x[c] - mu;
        sq += d * d;
    }
    const T r = T(1) / sqrt(block_sum(sq, buf) / C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const T h = (x[c] - mu) * r;
        xhat[c] = h;
        y[c] = h * weight[c] + bias[c];
    }
    if (threadIdx.x == 0) rstd[row] = r;
}

// dy, xhat, dx: (N, C)   rstd: (N,)   weight: (C,)
template <typename T>
__global__ void layernorm_backward(const T* dy, const T* xhat, const T* rstd, const T* weight,
                                   int C, T* dx) {
    __shared__ T buf[MAX_THREADS];
    const size_t row = blockIdx.x;
    dy += row * C;
    xhat += row * C;
    dx += row * C;
    T sum_d = 0, sum_dh = 0;  // sums of dxhat and dxhat * xhat
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const T d = dy[c] * weight[c];
        sum_d += d;
        sum_dh += d * xhat[c];
    }
    const T mean_d = block_sum(sum_d, buf) / C;
    const T mean_dh = block_sum(sum_dh, buf) / C;
    const T r = rstd[row];
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dx[c] = r * (dy[c] * weight[c] - mean_d - xhat[c] * mean_dh);
}

// scores: (rows, Tk), row = r * Tq + i for query i of any leading index r
template <typename T>
__global__ void causal_softmax(T* scores, int Tq, int Tk) {
    __shared__ T buf[MAX_THREADS];
    const size_t row = blockIdx.x;
    T* s = scores + row * Tk;
    const int n = Tk - Tq + (int)(row % Tq) + 1;  // query i sees keys 0 .. n-1
    T mx = s[0];  // key 0 is always visible; masked scores are never read
    for (int c = threadIdx.x; c < n; c += blockDim.x) mx = s[c] > mx ? s[c] : mx;
    mx = block_max(mx, buf);
    T sum = 0;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        const T e = exp(s[c] - mx);  // <= 1: no overflow, whatever the scores' size
        s[c] = e;
        sum += e;
    }
    const T inv = T(1) / block_sum(sum, buf);  // one division per row, not per score
    for (int c = threadIdx.x; c < Tk; c += blockDim.x) s[c] = c < n ? s[c] * inv : T(0);
}
"""

_CTYPES = {numpy.dtype(numpy.float32): "float", numpy.dtype(numpy.float64): "double"}


@functools.cache
def _row_kernels():
    """The row kernels as one module, for both dtypes; compiled on the first launch."""
    return cupy.RawModule(
        code=_ROW_SOURCE,
        options=(f"-DMAX_THREADS={MAX_THREADS}",),
        name_expressions=[
            f"{name}<{ctype}>"
            for name in ("layernorm_forward", "layernorm_backward", "causal_softmax")
            for ctype in _CTYPES.values()
        ],
    )


@functools.cache
def _row_kernel(name, dtype):
    return _row_kernels().get_function(f"{name}<{_CTYPES[dtype]}>")


def _launch(name, rows, width, *args):
    """One block per row of `width` values; the first argument's dtype picks float or double."""
    threads = min(MAX_THREADS, max(32, 1 << (width - 1).bit_length()))  # a power of two
    if rows:
        _row_kernel(name, args[0].dtype)((rows,), (threads,), args)


def _contiguous(a, dtype):
    """What a raw kernel reads: a C-contiguous array of the kernel's dtype (no copy if it is)."""
    return cupy.ascontiguousarray(a, dtype=dtype)


def gelu_forward(x):
    """y = 0.5 x (1 + t),  t = tanh(sqrt(2/pi) (x + 0.044715 x^3)).  Returns (y, GeluCache)."""
    y, tanh_u = _GELU_FORWARD(x)
    return y, GeluCache(x, tanh_u)


def gelu_backward(dy, cache):
    """dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh_u."""
    return _GELU_BACKWARD(dy, cache.x, cache.tanh_u)


def layernorm_forward(x, weight, bias, eps=1e-5):
    """Over the last axis of x (..., C):  mu = mean(x),  var = mean((x - mu)^2),
    rstd = 1 / sqrt(var + eps),  xhat = (x - mu) rstd,  y = xhat weight + bias.

    Returns (y, LayerNormCache(xhat, rstd, weight)): y and xhat (..., C), rstd (..., 1).
    """
    x = _contiguous(x, x.dtype)
    C = x.shape[-1]
    N = x.size // C  # rows
    y, xhat = cupy.empty_like(x), cupy.empty_like(x)  # (..., C)
    rstd = cupy.empty(x.shape[:-1] + (1,), dtype=x.dtype)  # (..., 1)
    weight_c, bias_c = _contiguous(weight, x.dtype), _contiguous(bias, x.dtype)
    eps = x.dtype.type(eps)
    _launch("layernorm_forward", N, C, x, weight_c, bias_c, eps, numpy.int32(C), y, xhat, rstd)
    return y, LayerNormCache(xhat, rstd, weight)


def layernorm_backward(dy, cache):
    """With dxhat = dy weight and means over the last axis:
    dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
    dweight = sum(dy xhat),  dbias = sum(dy)  (sums over every leading position, shape (C,)).
    """
    xhat = _contiguous(cache.xhat, cache.xhat.dtype)
    dy, rstd, weight = (_contiguous(a, xhat.dtype) for a in (dy, cache.rstd, cache.weight))
    C = xhat.shape[-1]
    N = xhat.size // C  # rows
    dx = cupy.empty_like(xhat)  # (..., C)
    _launch("layernorm_backward", N, C, dy, xhat, rstd, weight, numpy.int32(C), dx)
    dy2 = dy.reshape(-1, C)  # (N, C)
    return dx, (dy2 * xhat.reshape(-1, C)).sum(axis=0), dy2.sum(axis=0)


def causal_softmax(scores):
    """Softmax over the keys of scores (..., Tq, Tk), IN PLACE; returns `scores`.

    Query i (the last Tq of Tk positions) sees keys 0 .. Tk - Tq + i:
        probs = exp(s - max(s)) / sum(exp(s - max(s)))   over the visible keys,   0 elsewhere.
    """
    Tq, Tk = scores.shape[-2:]
    if Tq > Tk or not scores.flags.c_contiguous:
        raise ValueError("causal_softmax needs contiguous scores with Tq <= Tk")
    _launch("causal_softmax", scores.size // Tk, Tk, scores, numpy.int32(Tq), numpy.int32(Tk))
    return scores


def adamw_update(p, g, m, v, t, lr, betas, eps, weight_decay):
    """training/optim.py's adamw_update, in place on p, m, v, in one pass:
    m += (1 - b1)(g - m),  v = b2 v + (1 - b2) g^2,  p = decay p - step_size m / (sqrt(v) + eps),
    with the scalars of fast/adamw.py's folded_scalars.
    """
    b1, b2 = betas
    decay, step_size, eps_hat = folded_scalars(t, lr, betas, eps, weight_decay)
    f = p.dtype.type  # the scalars in the arrays' dtype: float math stays float
    # 1 - b1 and 1 - b2 in Python, then rounded, as in the CPU update: the same float32 values
    _ADAMW_UPDATE(g, f(1.0 - b1), f(b2), f(1.0 - b2), f(decay), f(step_size), f(eps_hat), p, m, v)


register_fast_path("gelu_forward", "cuda", gelu_forward)
register_fast_path("gelu_backward", "cuda", gelu_backward)
register_fast_path("layernorm_forward", "cuda", layernorm_forward)
register_fast_path("layernorm_backward", "cuda", layernorm_backward)
register_fast_path("causal_softmax", "cuda", causal_softmax)
register_fast_path("adamw_update", "cuda", adamw_update)
