"""Data parallelism: N processes ("ranks") train one model, over MPI and, on GPUs, NCCL.

Every rank holds the whole model. For each update of B sequences:

    windows = the update's batch, drawn from one seed     (B, T + 1), the same on every rank
    mine    = windows[r * B/N : (r + 1) * B/N]            rank r's shard: disjoint, together all B
    g_r     = (B/N) / B * gradient of mine's mean loss    rank r's share of the batch's mean
    g       = g_0 + g_1 + ... + g_(N-1)                    ONE all-reduce of one flat buffer
    clip(g); AdamW(g)                                     the same g everywhere: the same weights

So N ranks compute what one process computes from the same B sequences. Pre-training cuts
each rank's share into the shards one process would cut (update.batch_shards, at most
min(--micro-batch-size, B/N) sequences each) and every sequence draws its own dropout masks:
bit for bit when each rank holds a power of two of the shards one process adds in its tree
(two ranks: their halves), to rounding otherwise (tests/test_distributed.py). --batch-size
is the update's batch whatever N is: more ranks make an update faster, they do not change it.

Rank 0 alone reads the data and the run folder and writes checkpoints, metrics and progress;
the others are silent on stdout and receive what they need (configs, token ids, weights,
optimizer state) by broadcast, so only rank 0's machine needs the files. At every checkpoint
the ranks compare a checksum of their weights and stop loudly if they differ. During training,
a rank that waits longer than `timeout` seconds for the others (one died or hangs) stops them
all; while rank 0 prepares the run (a tokenizer may take minutes) the others wait unbounded.

World() is the single process: every operation below is then a no-op.
"""

import json
import os
import shutil
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..backend import to_numpy, xp_of

MISSING_MPI = (
    "--distributed needs mpi4py and an MPI library, which are optional: install them with "
    "`pip install -r requirements-distributed.txt` (the mpich wheel brings MPI itself, no "
    "system MPI is needed), then launch N processes with `mpiexec -n N python -m minigpt1 ...`"
)
DEFAULT_TIMEOUT = 600.0  # seconds a rank waits for the others (covers rank 0's checkpoints)
TIMEOUT_STATUS = 3  # the exit status of every rank when one gave up waiting
ABORT_GRACE = 1.0  # seconds between an error's message and the abort that ends every rank


class RanksDiverged(RuntimeError):
    """The ranks' weights are no longer identical: their updates differed."""


class World:
    """The processes of a run: this one's `rank`, their number `size`, and the collective
    operations training needs. `comm` is an mpi4py communicator; `nccl` a CuPy NCCL
    communicator for gradients on the GPU (None: through MPI)."""

    def __init__(self, comm=None, timeout=None, nccl=None, local_size=1):
        self.comm, self.timeout, self.nccl, self.local_size = comm, timeout, nccl, local_size
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.flat = None  # the all-reduce buffer, allocated at the first update and reused
        self.reduce_seconds = 0.0  # time spent in sum_gradients: packing, waiting, summing

    @property
    def is_writer(self):
        """Whether this rank writes files and prints (rank 0)."""
        return self.rank == 0

    def shard(self, n, what="sequences"):
        """This rank's slice of n items: rank r takes [r n/N, (r + 1) n/N)."""
        if n % self.size:
            raise ValueError(f"a batch of {n} {what} does not split evenly over {self.size} "
                             f"ranks; choose a --batch-size that is a multiple of {self.size}")
        per_rank = n // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def sum_gradients(self, grads, scalars):
        """Sum {name: gradient} over ranks in one all-reduce of one flat buffer, and a tuple
        of floats (the losses, kept in float64) in a second, tiny one; returns (grads,
        scalars). The summed gradients are views into the buffer, valid until the next call."""
        if self.size == 1:
            return grads, scalars
        started = time.perf_counter()
        first = next(iter(grads.values()))
        n = sum(g.size for g in grads.values())
        if self.flat is None or self.flat.size != n:
            self.flat = xp_of(first).empty(n, dtype=first.dtype)
        flat, offset, summed = self.flat, 0, {}
        for name, g in grads.items():  # pack (one pass over the gradients) and name the views
            flat[offset : offset + g.size] = g.reshape(-1)
            summed[name] = flat[offset : offset + g.size].reshape(g.shape)
            offset += g.size
        totals = np.array(scalars, np.float64)
        with self._waiting("summing the gradients"):
            self._allreduce(flat)
            self.comm.Allreduce(self._mpi().IN_PLACE, totals)
        self.reduce_seconds += time.perf_counter() - started
        return summed, tuple(float(x) for x in totals)

    def _allreduce(self, flat):
        if self.nccl is not None:  # device memory to device memory, on the current stream
            import cupy
            from cupy.cuda import nccl

            kind = nccl.NCCL_FLOAT32 if flat.dtype == np.float32 else nccl.NCCL_FLOAT64
            stream = cupy.cuda.get_current_stream()
            self.nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM,
                                stream.ptr)
            stream.synchronize()  # inside the time limit: a rank that never joins is caught
        elif xp_of(flat) is np:
            self.comm.Allreduce(self._mpi().IN_PLACE, flat)
        else:  # CuPy arrays without NCCL (ranks sharing one GPU): through host memory
            host = to_numpy(flat)
            self.comm.Allreduce(self._mpi().IN_PLACE, host)
            flat.set(host)

    def agree(self, flag, what="agreeing whether to stop"):
        """True on every rank if it is True on any (e.g. one rank saw Ctrl-C)."""
        if self.size == 1:
            return bool(flag)
        mine = np.array([int(bool(flag))], np.int64)
        with self._waiting(what):
            self.comm.Allreduce(self._mpi().IN_PLACE, mine, op=self._mpi().MAX)
        return bool(mine[0])

    def barrier(self):
        """Wait until every rank gets here."""
        if self.size > 1:
            with self._waiting("waiting for rank 0 to finish its checkpoint"):
                self.comm.Barrier()

    def broadcast_json(self, value=None):
        """Rank 0's JSON-able value, on every rank (sent as UTF-8 bytes: no pickle)."""
        if self.size == 1:
            return value
        data = np.frombuffer(json.dumps(value).encode(), np.uint8).copy() if self.is_writer \
            else None
        length = np.array([0 if data is None else data.size], np.int64)
        self.comm.Bcast(length, root=0)
        if data is None:
            data = np.empty(int(length[0]), np.uint8)
        self.comm.Bcast(data, root=0)
        return json.loads(data.tobytes().decode())

    def broadcast(self, values=None):
        """Rank 0's dict of JSON-able values and NumPy arrays, on every rank."""
        if self.size == 1:
            return values
        header = None
        if self.is_writer:
            arrays = {k: v for k, v in values.items() if isinstance(v, np.ndarray)}
            header = {"json": {k: v for k, v in values.items() if k not in arrays},
                      "arrays": {k: [list(v.shape), v.dtype.str] for k, v in arrays.items()}}
        header = self.broadcast_json(header)
        received = dict(header["json"])
        for name, (shape, dtype) in header["arrays"].items():
            array = np.ascontiguousarray(values[name]) if self.is_writer \
                else np.empty(shape, np.dtype(dtype))
            self.comm.Bcast(array, root=0)
            received[name] = array
        return received

    def broadcast_into(self, arrays):
        """Overwrite {name: array} on every rank with rank 0's values, in place."""
        if self.size == 1:
            return
        for name in sorted(arrays):
            host = np.ascontiguousarray(to_numpy(arrays[name]))
            self.comm.Bcast(host, root=0)
            if not self.is_writer:
                arrays[name][...] = xp_of(arrays[name]).asarray(host)

    def share_weights(self, model, optimizer):
        """Give every rank rank 0's weights and optimizer state (fresh or resumed)."""
        self.broadcast_into(model.params)
        self.broadcast_into({f"m.{k}": m for k, m in optimizer.m.items()})
        self.broadcast_into({f"v.{k}": v for k, v in optimizer.v.items()})
        optimizer.t = self.broadcast_json(optimizer.t)

    def check_identical(self, arrays, step):
        """Raise RanksDiverged unless every rank holds bit-identical arrays: a CRC-32 of each
        array's bytes (0.1 s for GPT-1's 117 M weights), gathered from all ranks."""
        if self.size == 1:
            return
        names = sorted(arrays)
        mine = np.array([zlib.crc32(np.ascontiguousarray(to_numpy(arrays[name])))
                         for name in names], np.int64)
        everyone = np.empty((self.size, len(names)), np.int64)
        with self._waiting("comparing the weights' checksums"):
            self.comm.Allgather(mine, everyone)
        differs = (everyone != everyone[0]).any(axis=0)
        if differs.any():
            first = int(np.argmax(differs))
            ranks = [r for r in range(self.size) if everyone[r, first] != everyone[0, first]]
            raise RanksDiverged(
                f"after update {step} the ranks' weights differ ({differs.sum()} tensors, first "
                f"{names[first]}; ranks {ranks} differ from rank 0's): their updates were not "
                "the same. Check that every rank runs the same minigpt1, NumPy and BLAS, then "
                "--resume from the last checkpoint"
            )

    @contextmanager
    def _waiting(self, what):
        """Stop every rank if this block does not end within `timeout` seconds."""
        if self.timeout is None or self.size == 1:
            yield
            return
        timer = threading.Timer(self.timeout, self._give_up, args=(what,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _give_up(self, what):
        """Runs on the timer's thread while the main one is blocked inside MPI."""
        sys.stderr.write(
            f"error: rank {self.rank} waited {self.timeout:g} s for the other ranks while "
            f"{what}: one of them has died or hangs (its own messages say why). Stopping all "
            "ranks; continue with --resume. If an evaluation or a checkpoint legitimately "
            "takes longer, raise --dist-timeout.\n")
        self.abort(TIMEOUT_STATUS)

    def abort(self, status):
        """End every rank now (after an error on this one, so the others do not wait)."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)  # mpiexec relays our output: let it pass the message on first
        if self.comm is not None and self.size > 1:
            self.comm.Abort(status)
        os._exit(status)

    def _mpi(self):
        from mpi4py import MPI

        return MPI

    def describe(self, batch_size, micro_batch_size, lr):
        """The lines printed at start: who does what, and what the batch and lr mean."""
        per_rank = batch_size // self.size
        how = "NCCL" if self.nccl is not None else "MPI"
        threads = os.environ.get("OMP_NUM_THREADS", "all")
        return [
            f"distributed: {self.size} ranks ({self.local_size} on this machine, {threads} BLAS "
            f"thread{'' if threads == '1' else 's'} each), gradients summed by {how}",
            f"batch per update: {self.size} ranks x {per_rank} sequences = {batch_size} (in "
            f"micro-batches of {min(micro_batch_size, per_rank)}); the learning rate {lr:g} is "
            "not scaled: the update is the same as one process's with this batch",
        ]


SINGLE = World()  # one process: no MPI


def find_mpiexec():
    """The mpiexec beside this Python (where the mpich wheel puts it), else the one on PATH,
    else None."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def init_world(device="cpu", timeout=DEFAULT_TIMEOUT):
    """The World of the processes mpiexec started; on CUDA each rank takes one GPU of its
    machine and the gradients go through NCCL (through MPI when ranks share a GPU)."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as err:  # no mpi4py, or no MPI library
        raise RuntimeError(f"{MISSING_MPI} ({err})") from err
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        print("note: --distributed in a single process; start N of them with "
              "`mpiexec -n N python -m minigpt1 ...`", file=sys.stderr)
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
    world = World(comm, timeout, local_size=local.Get_size())
    if device == "cuda":
        world.nccl = gpu_communicator(world, local.Get_rank())
    if not world.is_writer:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    return world


def gpu_communicator(world, local_rank):
    """Select this rank's GPU; a NCCL communicator when every rank has its own, else None."""
    import cupy

    gpus = cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(local_rank % gpus).use()
    # NCCL refuses two ranks on one GPU; one machine short of GPUs decides for all
    if world.agree(world.local_size > gpus, "choosing how to sum the gradients"):
        if world.is_writer:
            print(f"{world.local_size} ranks share {gpus} GPU(s) on this machine: gradients "
                  "go through host memory with MPI, not NCCL")
        return None
    from cupy.cuda import nccl

    uid = world.broadcast_json(list(nccl.get_unique_id()) if world.is_writer else None)
    return nccl.NcclCommunicator(world.size, tuple(uid), world.rank)
