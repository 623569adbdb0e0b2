"""Matrix products cut into fixed blocks that run on every core: the same numbers on any number.

In a training step BLAS runs one thread (batch_threads.run_in_order): a batch of several
shards keeps the cores busy with shards. A batch of one shard (one sequence, as a GPT-1-size
batch often is on a CPU, or a rank's share of one) would then multiply on one core.
OpenBLAS's own threads are no answer: how it splits a product depends on how many threads it
has, and so, for some shapes, do the last bits of the result (GPT-1's head backward,
(512, 40478) @ (40478, 768), comes out different on 1 and 2 threads). So one of a product's
sizes is cut into 4 parts (batch_threads.fixed_parts), whatever the number of cores:

    N, the columns of b:    out[:, j0:j1] = a @ b[:, j0:j1]
    K, the inner size:      out = a[:, k0:k1] @ b[k0:k1] summed over the blocks, in order

K is cut where it is the largest size (the head's backward over the vocabulary): each block
then reads a quarter of both operands and writes a small partial sum. Otherwise N is: each
block reads all of a and a quarter of b. Each block is one single-threaded BLAS call, and the
blocks are dealt out to the threads there are, the caller taking its share: the numbers
depend on the shapes alone. A shard of one sequence cuts its products so whether it runs
alone or beside other shards (there its blocks run one after another, in its own thread):
it gives the same numbers on any number of ranks. `python benchmarks/step_products.py` times
the blocks beside OpenBLAS's own threads (docs/speed.md).
"""

import numpy

from ..backend import register_fast_path
from ..layers.linear import matrix_product
from .batch_threads import fixed_parts, map_dealt, parts_threads

MIN_WORK = 1 << 25  # multiply-adds below which a product stays whole (its blocks, run one
#                     after another beside other shards, would cost more than they give)


def product_in_blocks(a, b):
    threads = parts_threads()
    if threads is None or not isinstance(a, numpy.ndarray):  # BLAS splits it as it likes
        return matrix_product.plain(a, b)
    (M, K), N = a.shape, b.shape[1]
    if M * K * N < MIN_WORK:
        return matrix_product.plain(a, b)
    inner = K > max(M, N)  # cut K, else N
    size = K if inner else N
    cuts = fixed_parts(size)
    if inner:
        parts = map_dealt(lambda k: a[:, k] @ b[k], cuts, threads)  # (M, N) each
        out = parts[0]
        for part in parts[1:]:  # in the blocks' order
            out += part
        return out
    out = numpy.empty((M, N), dtype=numpy.result_type(a, b))
    map_dealt(lambda j: numpy.matmul(a, b[:, j], out=out[:, j]), cuts, threads)
    return out


register_fast_path("matrix_product", "cpu", product_in_blocks)
