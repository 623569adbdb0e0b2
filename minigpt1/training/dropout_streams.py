"""Dropout masks that belong to a sequence, not to the thread or rank that happens to run it.

A training step splits its batch into shards that run on several cores (update.py). If the
shards drew their dropout masks from one shared generator, the masks would depend on which
shard asked first, and so on the number of cores. Instead every mask is drawn one sequence at
a time from Philox, a counter-based generator: its numbers are a fixed function of a key and
a counter, with no state carried from one draw to the next,

    k[b] = Philox(key = seed, counter = (n, site, b, step)),   n = 1, 2, ...   16-bit integers
    u[b] = k[b] / 65536                                        uniform in [0, 1), 16 bits each

for sequence b of the update's batch. `site` numbers the dropouts of one forward pass in the
order they run (the embedding's, then each block's in turn), so it stands for (layer, which
dropout of the layer). Sequence 5's masks at step 12 are the same whether it ran alone or
beside sequence 4, on thread 1 or on rank 3: a student's loss curve is the same on any laptop
for the same seed. A run resumed at step s draws step s's masks as the uninterrupted run did.

Sixteen bits per number are plenty for a dropout rate (p counts as the next multiple of
1/65536: 0.1 drops with probability 0.1000061), and each 64-bit word of Philox gives four of
them: 262,144 uniform numbers cost 0.48 ms here, as many as float32 numbers from NumPy's
default generator (PCG64), where Philox's own float32 numbers take 0.76 ms.

On a GPU the masks are drawn on the device, for a whole shard at once, from one generator
per shard seeded by (seed, step, the shard's first sequence, its size): still independent of
the number of ranks, but not of how many sequences a shard holds.
"""

import math

import numpy as np

from .. import backend


class DropoutStreams:
    """A random generator for `dropout_forward` (it calls `.random(shape, dtype)`) that draws
    the rows of each array from the streams of the batch's sequences `rows` (a range)."""

    def __init__(self, seed, step, rows, device="cpu"):
        self.step, self.rows, self.device = step, rows, device
        self.key = np.random.SeedSequence(seed).generate_state(2, np.uint64)  # Philox's key
        self.site = 0  # the next dropout of the forward pass
        if device == "cuda":
            shard = np.random.SeedSequence([seed, step, rows.start, len(rows)])
            self.on_device = backend.device_rng("cuda", int(shard.generate_state(1)[0]))

    def random(self, shape, dtype=np.float64):
        """Uniform numbers of `shape` (len(rows), ...): row i from sequence rows[i]'s stream."""
        site = self.next_site(shape)
        if self.device == "cuda":
            return self.on_device.random(shape, dtype=dtype)
        k = np.empty(shape, dtype=np.uint16)  # (rows, ...)
        per_row = math.prod(shape[1:])
        for i, sequence in enumerate(self.rows):
            philox = np.random.Philox(key=self.key, counter=[0, site, sequence, self.step])
            words = philox.random_raw((per_row + 3) // 4)  # uint64: four 16-bit numbers each
            k[i] = words.view(np.uint16)[:per_row].reshape(shape[1:])
        return np.multiply(k, 1.0 / 65536, dtype=dtype)  # exact: k / 2^16

    def next_site(self, shape):
        """The number of this dropout in the forward pass, after checking its rows."""
        if shape[0] != len(self.rows):
            raise ValueError(f"an array of {shape[0]} rows drawn from the streams of "
                             f"{len(self.rows)} sequences")
        self.site += 1
        return self.site - 1
