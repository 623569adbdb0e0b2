"""Generation's blocks on the CPU: model/block.py's block_decode in fewer NumPy calls.

Generating with a key/value cache runs every block on one new token at a time, so each array
is a row of C to 4C numbers per sequence. A token's time is then not arithmetic but the fixed
cost of each NumPy call (about a microsecond) and of the Python around it: at the tiny preset
(C = 128) a block took 62 us, of which its four products 10. block_decode runs the block as
training does: every layer keeps its cache for a backward pass that generation never makes,
and goes through its dispatch, reshapes and checks. Here the same formulas keep nothing but
the keys and values:
- each linear layer is one numpy.dot over the (B*T, C) rows, its bias and the residual added
  in place;
- the attention is fast/attention.py's, from q, k and v to its output, dropout off;
- LayerNorm and GELU write over arrays that nothing else reads.
The numbers are block_decode's up to float rounding (tests/test_fast_paths.py).
"""

import numpy

from ..backend import register_fast_path
from ..layers.attention import merge_heads
from .attention import (
    QUERY_BLOCK,
    attend_by_blocks,
    scaled_queries_keys_values,
    unshifted_sequences,
)
from .gelu import gelu_forward_into
from .layernorm import layernorm_in_place


def affine(rows, weight, bias):
    """rows (N, C_in) @ weight (C_in, C_out) + bias -> (N, C_out), the bias added in place."""
    out = numpy.dot(rows, weight)
    out += bias
    return out


def block_decode_rows(x, p, n_head, eps=1e-5, past=None):
    B, T, C = x.shape
    rows = x.reshape(B * T, C)
    # a = c_proj(attention(c_attn(x)))
    qkv = affine(rows, p["attn.c_attn.weight"], p["attn.c_attn.bias"])  # (B*T, 3C)
    q, k, v = scaled_queries_keys_values(qkv.reshape(B, T, 3 * C), n_head, past)
    y_h, _ = attend_by_blocks(q, k, v, 0.0, None, QUERY_BLOCK, unshifted_sequences(q, k))
    y = merge_heads(y_h).reshape(B * T, C)
    a = affine(y, p["attn.c_proj.weight"], p["attn.c_proj.bias"])  # (B*T, C)
    # n = LN_1(x + a)
    a += rows
    n = layernorm_in_place(a, p["ln_1.weight"], p["ln_1.bias"], eps)
    # m = mlp.c_proj(gelu(mlp.c_fc(n)))
    f = affine(n, p["mlp.c_fc.weight"], p["mlp.c_fc.bias"])  # (B*T, 4C)
    g = numpy.empty_like(f)
    gelu_forward_into(f, g, g)  # tanh(u) is not kept: it is built in g's memory, then y
    m = affine(g, p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])  # (B*T, C)
    # h = LN_2(n + m)
    m += n
    h = layernorm_in_place(m, p["ln_2.weight"], p["ln_2.bias"], eps)
    return h.reshape(B, T, C), k, v


register_fast_path("block_decode", "cpu", block_decode_rows)
