"""One GPT-1 transformer block: post-LayerNorm, exactly as the original code and Figure 1.

    a = dropout(c_proj(attention(c_attn(x))))           masked multi-head self-attention
    n = LN_1(x + a)                                      add, then normalise (post-LN)
    m = dropout(mlp.c_proj(gelu(mlp.c_fc(n))))           position-wise feed-forward, width 4C
    h = LN_2(n + m)

The parameters come in a dict whose keys are HuggingFace's names without the `h.{i}.` prefix
(`attn.c_attn.weight`, `ln_1.bias`, ...); the gradients come back under the same keys.
The backward pass runs the same lines in exact reverse order; where a value fans out (the
residual stream x feeds both the attention and the skip connection) the gradients add.
"""

from typing import NamedTuple

from ..backend import fast_path
from ..layers import (
    attention_backward,
    attention_forward,
    dropout_backward,
    dropout_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
)

BLOCK_PARAM_SHAPES = {  # name -> shape as a function of C (n_embd)
    "attn.c_attn.weight": lambda C: (C, 3 * C),
    "attn.c_attn.bias": lambda C: (3 * C,),
    "attn.c_proj.weight": lambda C: (C, C),
    "attn.c_proj.bias": lambda C: (C,),
    "ln_1.weight": lambda C: (C,),
    "ln_1.bias": lambda C: (C,),
    "mlp.c_fc.weight": lambda C: (C, 4 * C),
    "mlp.c_fc.bias": lambda C: (4 * C,),
    "mlp.c_proj.weight": lambda C: (4 * C, C),
    "mlp.c_proj.bias": lambda C: (C,),
    "ln_2.weight": lambda C: (C,),
    "ln_2.bias": lambda C: (C,),
}


class BlockCache(NamedTuple):
    c_attn: object
    attn: object
    attn_proj: object
    attn_dropout: object
    ln_1: object
    c_fc: object
    gelu: object
    mlp_proj: object
    mlp_dropout: object
    ln_2: object


def block_forward(x, p, n_head, eps=1e-5, attn_pdrop=0.0, resid_pdrop=0.0, rng=None, past=None):
    """x: (B, T, C) -> h: (B, T, C). Dropout rates of 0 (evaluation) make it deterministic.

    `past` (keys, values of earlier tokens) is passed to the attention, for generation.
    """
    qkv, c_attn = linear_forward(x, p["attn.c_attn.weight"], p["attn.c_attn.bias"])  # (B, T, 3C)
    y, attn = attention_forward(qkv, n_head, attn_pdrop, rng, past)  # (B, T, C)
    a, attn_proj = linear_forward(y, p["attn.c_proj.weight"], p["attn.c_proj.bias"])
    a, attn_dropout = dropout_forward(a, resid_pdrop, rng)
    n, ln_1 = layernorm_forward(x + a, p["ln_1.weight"], p["ln_1.bias"], eps)  # (B, T, C)
    f, c_fc = linear_forward(n, p["mlp.c_fc.weight"], p["mlp.c_fc.bias"])  # (B, T, 4C)
    g, gelu = gelu_forward(f)
    m, mlp_proj = linear_forward(g, p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])  # (B, T, C)
    m, mlp_dropout = dropout_forward(m, resid_pdrop, rng)
    h, ln_2 = layernorm_forward(n + m, p["ln_2.weight"], p["ln_2.bias"], eps)  # (B, T, C)
    cache = BlockCache(
        c_attn, attn, attn_proj, attn_dropout, ln_1, c_fc, gelu, mlp_proj, mlp_dropout, ln_2
    )
    return h, cache


@fast_path
def block_decode(x, p, n_head, eps=1e-5, past=None):
    """The block in generation, dropout off: x (B, T, C) of T new tokens after `past` -> h
    (B, T, C), and the keys and values (B, nh, P + T, hs) of every token so far: the next
    step's past. block_forward does the work; fast/decode.py runs the same math in fewer calls.
    """
    h, cache = block_forward(x, p, n_head, eps, past=past)
    return h, cache.attn.k, cache.attn.v


def block_backward(dh, cache):
    """dh: (B, T, C) -> dx: (B, T, C) and a dict of parameter gradients."""
    g = {}  # parameter gradients, under the block's short names
    # forward: h = LN_2(n + m)
    dsum2, g["ln_2.weight"], g["ln_2.bias"] = layernorm_backward(dh, cache.ln_2)
    # forward: m = dropout(mlp.c_proj(gelu(mlp.c_fc(n))))
    dm = dropout_backward(dsum2, cache.mlp_dropout)
    dg, g["mlp.c_proj.weight"], g["mlp.c_proj.bias"] = linear_backward(dm, cache.mlp_proj)
    df = gelu_backward(dg, cache.gelu)
    dn, g["mlp.c_fc.weight"], g["mlp.c_fc.bias"] = linear_backward(df, cache.c_fc)
    dn += dsum2  # n reached h twice: through the MLP and through the skip connection
    # forward: n = LN_1(x + a)
    dsum1, g["ln_1.weight"], g["ln_1.bias"] = layernorm_backward(dn, cache.ln_1)
    # forward: a = dropout(attn.c_proj(attention(attn.c_attn(x))))
    da = dropout_backward(dsum1, cache.attn_dropout)
    dy, g["attn.c_proj.weight"], g["attn.c_proj.bias"] = linear_backward(da, cache.attn_proj)
    dqkv = attention_backward(dy, cache.attn)  # (B, T, 3C)
    dx, g["attn.c_attn.weight"], g["attn.c_attn.bias"] = linear_backward(dqkv, cache.c_attn)
    dx += dsum1  # x reached n twice: through attention and through the skip connection
    return dx, g
