"""Matrix products cut into fixed blocks that run on every core: the same numbers on any number.

In a training step BLAS runs one thread (batch_threads.run_in_order): a batch of several
shards keeps the cores busy with shards. A batch of one shard (one sequence, as a GPT-1-size
batch often is on a CPU) would then multiply on one core. OpenBLAS's own threads are no
answer: how it splits a product depends on how many threads it has, and so, for some
shapes, do the last bits of the result (GPT-1's head backward, (512, 40478) @ (40478, 768),
comes out different on 1 and 2 threads). So the largest of a product's three sizes is cut
into BLOCKS parts, whatever the number of cores:

    M, the rows of a:       out[i0:i1]    = a[i0:i1] @ b
    N, the columns of b:    out[:, j0:j1] = a @ b[:, j0:j1]
    K, the inner size:      out = a[:, k0:k1] @ b[k0:k1] summed over the blocks, in order

Each block is one single-threaded BLAS call, and the blocks run on the threads there are:
the numbers depend on the shapes alone. Cutting the largest size keeps the operand that every
block reads whole (and packs again) the smaller one.
"""

import numpy

from ..backend import register_fast_path
from ..layers.linear import matrix_product
from .batch_threads import block_threads, map_at_most

BLOCKS = 4  # parts per product: work for 1, 2 or 4 cores alike
MIN_WORK = 1 << 22  # multiply-adds below which a product stays whole


def product_in_blocks(a, b):
    threads = block_threads()
    if threads is None or not isinstance(a, numpy.ndarray):  # BLAS splits it as it likes
        return matrix_product.plain(a, b)
    (M, K), N = a.shape, b.shape[1]
    if M * K * N < MIN_WORK:
        return matrix_product.plain(a, b)
    size = max(M, N, K)
    cuts = [slice(size * i // BLOCKS, size * (i + 1) // BLOCKS) for i in range(BLOCKS)]
    if size == K:
        parts = []
        map_at_most(lambda k: a[:, k] @ b[k], cuts, threads, parts.append)  # (M, N) each
        out = parts[0]
        for part in parts[1:]:  # in the blocks' order
            out += part
        return out
    out = numpy.empty((M, N), dtype=numpy.result_type(a, b))

    def block(cut):  # rows or columns of out, written in place
        if size == M:
            numpy.matmul(a[cut], b, out=out[cut])
        else:
            numpy.matmul(a, b[:, cut], out=out[:, cut])

    map_at_most(block, cuts, threads, lambda _: None)  # each block wrote its part of out
    return out


register_fast_path("matrix_product", "cpu", product_in_blocks)
