"""What tests/test_distributed.py runs under `mpiexec -n N`: one job per call.

    python tests/mpi_worker.py train OUT.npz --steps K --batch B --micro M --dropout P
        K updates of a tiny float64 GPT on a fixed token stream, the batch of B split over the
        ranks; rank 0 saves the weights and the losses to OUT.npz. Run in one process, it is
        the reference the distributed runs are compared with.
    python tests/mpi_worker.py checksums
        ranks start from different seeds; share_weights must make them identical, and one
        changed weight on rank 1 must be caught by check_identical on every rank (rank 0
        prints what it caught; a rank that misses it exits with an error).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt1 import GPT, GPTConfig  # noqa: E402
from minigpt1.training.distributed import SINGLE, RanksDiverged, init_world  # noqa: E402
from minigpt1.training.lm_objective import TrainConfig, train_step  # noqa: E402
from minigpt1.training.optim import AdamW  # noqa: E402

CFG = dict(vocab_size=50, n_ctx=8, n_embd=16, n_head=2, n_layer=2)


def tiny_gpt(seed, dropout, device):
    cfg = GPTConfig(**CFG, embd_pdrop=dropout, attn_pdrop=dropout, resid_pdrop=dropout)
    return GPT(cfg, seed=seed, device=device, dtype="float64")


def train(args, world):
    model = tiny_gpt(0, args.dropout, args.device)
    optimizer = AdamW(model.params, lr=1e-2, weight_decay=0.01)
    world.share_weights(model, optimizer)
    tcfg = TrainConfig(batch_size=args.batch, micro_batch_size=args.micro, seed=3)
    ids = np.random.default_rng(7).integers(0, CFG["vocab_size"], size=500)
    losses = [train_step(model, optimizer, ids, step, 1e-2, tcfg, CFG["n_ctx"], world)[0]
              for step in range(args.steps)]
    world.check_identical(model.params, args.steps)
    if world.is_writer:
        params = {k: np.asarray(v.get() if hasattr(v, "get") else v)
                  for k, v in model.params.items()}
        np.savez(args.out, losses=np.array(losses), **params)


def checksums(world):
    model = tiny_gpt(world.rank, 0.0, "cpu")  # a different start on every rank
    optimizer = AdamW(model.params)
    world.share_weights(model, optimizer)
    world.check_identical(model.params, 0)  # must pass: rank 0's weights everywhere
    if world.rank == 1:
        model.params["h.1.mlp.c_fc.weight"][0, 0] += 1e-12
    try:
        world.check_identical(model.params, 1)
    except RanksDiverged as err:
        print(f"rank {world.rank}: {err}", flush=True)
        return
    raise SystemExit(f"rank {world.rank}: a changed weight went unnoticed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["train", "checksums"])
    parser.add_argument("out", nargs="?")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--single", action="store_true", help="no MPI: the reference")
    args = parser.parse_args()
    world = SINGLE if args.single else init_world(args.device, timeout=60)
    if args.job == "train":
        train(args, world)
    else:
        checksums(world)


if __name__ == "__main__":
    main()
