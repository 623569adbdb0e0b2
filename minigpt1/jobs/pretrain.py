"""The pre-training job: a folder of texts -> tokenizer -> token ids -> model -> a run folder.

    RUN/
        run.json          what the run is: model config, training config, data, tokenizer,
                          and the plan it was started with
        tokenizer/        the BPE files (trained here unless the plan names a tokenizer)
        metrics.jsonl     one JSON line per logged step (step, loss, lr, val_loss, ...)
        checkpoints/      last and best (see training/checkpoint.py)
        loss.png, lr.png  training and validation loss, learning rate (written at the end)

A run folder belongs to one run: starting a new run in it needs `force`, and resuming checks
that the tokenizer and the architecture are the ones the run started with.

On several ranks (`world`, see distributed.py) rank 0 alone prepares the run as above; the
others receive the plan, the model config and the token ids from it, then the weights and
the optimizer state.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..config import GPTConfig
from ..corpus.text_folders import (
    cache_file,
    chars_and_bytes,
    encode_texts,
    load_text_dir,
    split_documents,
)
from ..fileio import read_json, section, write_json_atomic
from ..model.gpt import GPT
from ..plots import plot_losses, plot_lr
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import Checkpoint, load_checkpoint
from ..training.distributed import SINGLE
from ..training.estimate import describe
from ..training.lm_objective import TokenData, TrainConfig, pretrain
from ..training.optim import AdamW
from ..training.update import check_rank_fits, rank_micro_batches
from .run_folder import (
    FORMAT_VERSION,
    check_run_dir,
    checkpoint_config,
    fingerprint,
    plan_json,
    start_run_dir,
)

DROPOUTS = ("embd_pdrop", "attn_pdrop", "resid_pdrop")


@dataclass
class PretrainPlan:
    """What to pre-train, on what and where: `python -m minigpt1 pretrain`'s flags (cli.py
    builds it), recorded in run.json as "plan"."""

    text_dir: str | Path  # a folder of UTF-8 .txt files
    run_dir: str | Path  # the run folder (--out)
    preset: str = "small"  # the model's size: tiny | small | gpt1
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer_dir: str | Path | None = None  # use this BPE instead of training one
    vocab_size: int | None = None  # BPE vocabulary to train (default: the preset's)
    bpe_mode: str = "bytes"  # bytes: lossless byte-level BPE; gpt1: GPT-1's lower-cased
    n_ctx: int | None = None  # context length, at most the preset's (default: the preset's)
    dropout: float | None = None  # replaces the preset's three dropout rates (GPT-1: 0.1)
    resume: bool = False  # continue the run in run_dir (its own settings, from run.json)
    force: bool = False  # delete a run already in run_dir and start over
    device: str = "cpu"  # cpu | cuda
    cache_dir: str | Path | None = None  # token-id cache (default text_dir/.minigpt1-cache)

    @classmethod
    def from_json(cls, values):
        return cls(**{**values, "train": TrainConfig(**values["train"])})


@dataclass
class PreparedRun:
    """What rank 0 prepares before the first update, and every rank trains from."""

    plan: PretrainPlan  # a resumed run's carries the TrainConfig the run started with
    cfg: GPTConfig
    data: TokenData
    start_step: int = 0
    total_steps: int | None = None  # None: a fresh run, planned once its first updates are timed
    tokenizer: BPETokenizer | None = None  # rank 0 only
    checkpoint: Checkpoint | None = None  # rank 0 only: the weights and AdamW state to resume


def run_pretraining(plan, world=SINGLE, progress=True):
    """Pre-train (or resume) a model as planned; returns a summary dict.

    Token ids are cached in plan.cache_dir, keyed by the texts and the tokenizer, so a second
    run on the same data skips the encoding. On several ranks, rank 0 prepares the run and
    every rank trains; only rank 0 returns the summary (the others None).
    """
    run = share(prepare_pretraining(plan, world) if world.is_writer else None, world)
    tcfg, checkpoint = run.plan.train, run.checkpoint
    model = GPT(run.cfg, seed=tcfg.seed, device=run.plan.device,
                params=checkpoint and checkpoint.params)
    optimizer = AdamW(model.params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if checkpoint:
        optimizer.load_state_dict(checkpoint.optimizer)
    world.share_weights(model, optimizer)  # all ranks start from rank 0's weights
    run_dir = Path(run.plan.run_dir)
    result = pretrain(model, optimizer, run.data, tcfg, run_dir, run.start_step,
                      run.total_steps, progress, world)
    if not world.is_writer:
        return None
    plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png",
                title=f"pre-training {run.plan.preset} on {run.plan.text_dir}")
    plot_lr(run_dir / "metrics.jsonl", run_dir / "lr.png")
    return {"run_dir": run_dir, "model": model, "tokenizer": run.tokenizer, **result}


def share(run, world):
    """Rank 0's PreparedRun on every rank: the plan, the model config, where to start and the
    token ids travel (as JSON and arrays, no pickle); the weights follow by share_weights."""
    if world.size == 1:
        return run
    if world.is_writer:
        world.broadcast({
            "plan": plan_json(run.plan), "config": run.cfg.to_dict(), "start_step": run.start_step,
            "total_steps": run.total_steps, "train_ids": run.data.train, "val_ids": run.data.val,
            "val_tokens_per_unit": run.data.val_tokens_per_unit, "unit": run.data.unit,
        })  # fmt: skip
        return run
    sent = world.broadcast()
    data = TokenData(sent["train_ids"], sent["val_ids"], sent["val_tokens_per_unit"],
                     sent["unit"])
    return PreparedRun(PretrainPlan.from_json(sent["plan"]), GPTConfig.from_dict(sent["config"]),
                       data, sent["start_step"], sent["total_steps"])


def prepare_pretraining(plan, world=SINGLE):
    """Check, read and write what a run needs before its first update: the run folder, the
    tokenizer, the token ids, run.json or the checkpoint to resume."""
    run_dir = check_run_dir(plan.run_dir, plan.resume, plan.force)
    train_texts, val_texts = split_documents(load_text_dir(plan.text_dir))  # before any write
    preset = GPTConfig.preset(plan.preset)
    vocab_size, n_ctx = plan.vocab_size or preset.vocab_size, plan.n_ctx or preset.n_ctx
    if not plan.resume:  # refuse an update that cannot fit in memory before anything is written
        planned = GPTConfig.preset(plan.preset, vocab_size=vocab_size, n_ctx=n_ctx)
        check_rank_fits(planned, world, plan.train.batch_size, plan.train.micro_batch_size)
        start_run_dir(run_dir)
    tokenizer = get_tokenizer(run_dir, train_texts, plan.tokenizer_dir, vocab_size,
                              plan.bpe_mode, plan.resume)
    key = fingerprint(run_dir / "tokenizer")
    data = token_data(plan, tokenizer, key, train_texts, val_texts)
    if plan.resume:
        run = resume_run(plan, tokenizer, data, world)
    else:
        rates = {} if plan.dropout is None else dict.fromkeys(DROPOUTS, plan.dropout)
        cfg = GPTConfig.preset(plan.preset, vocab_size=tokenizer.vocab_size, n_ctx=n_ctx, **rates)
        write_json_atomic(run_dir / "run.json", {
            "format_version": FORMAT_VERSION, "kind": "pretrain", "preset": plan.preset,
            "config": cfg.to_dict(), "train": asdict(plan.train), "text_dir": str(plan.text_dir),
            "bpe_mode": tokenizer.mode, "tokenizer_fingerprint": key, "plan": plan_json(plan),
        })  # fmt: skip
        run = PreparedRun(plan, cfg, data, tokenizer=tokenizer)
    print_estimate(run.cfg, run.plan.train, world)
    print(f"data: {len(data.train):,} training and {len(data.val):,} validation tokens "
          f"({tokenizer.mode} BPE, {tokenizer.vocab_size:,} tokens)")
    return run


def token_data(plan, tokenizer, key, train_texts, val_texts):
    """The texts' token ids, cached under a name made of the texts and the tokenizer's
    fingerprint `key`, and the validation text's tokens per byte (or character)."""
    cache = Path(plan.cache_dir or Path(plan.text_dir) / ".minigpt1-cache")
    train_ids = encode_texts(train_texts, tokenizer, cache_file(cache, "train", train_texts, key))
    val_ids = encode_texts(val_texts, tokenizer, cache_file(cache, "val", val_texts, key))
    unit = "byte" if tokenizer.mode == "bytes" else "char"
    chars, nbytes = chars_and_bytes(val_texts)
    return TokenData(train_ids, val_ids, len(val_ids) / (nbytes if unit == "byte" else chars),
                     unit)


def resume_run(plan, tokenizer, data, world=SINGLE):
    """The PreparedRun of the run in plan.run_dir, at its last checkpoint: run.json's
    configs, not the plan's, say what it continues."""
    _, cfg, tcfg = read_run(plan.run_dir)
    checkpoint = load_checkpoint(plan.run_dir)
    check_resume(cfg, checkpoint, tokenizer)
    check_rank_fits(cfg, world, tcfg.batch_size, tcfg.micro_batch_size)
    total_steps = checkpoint.state["total_steps"]
    print(f"resuming {plan.run_dir} at step {checkpoint.step} of {total_steps}")
    return PreparedRun(replace(plan, train=tcfg), cfg, data, checkpoint.step, total_steps,
                       tokenizer, checkpoint)


def get_tokenizer(run_dir, train_texts, tokenizer_dir=None, vocab_size=8192, mode="bytes",
                  resume=False):
    """The run's tokenizer: reloaded on resume, copied from tokenizer_dir, or trained here."""
    target = Path(run_dir) / "tokenizer"
    if resume:
        return BPETokenizer.load(target)
    if tokenizer_dir is not None:
        tokenizer = BPETokenizer.load(tokenizer_dir)
    else:
        print(f"training a {mode} BPE tokenizer with {vocab_size:,} tokens on the training text")
        tokenizer = BPETokenizer.train(train_texts, vocab_size, mode=mode)
    tokenizer.save(target)
    return tokenizer


def read_run(run_dir):
    """(run.json as a dict, its GPTConfig, its TrainConfig): what a resumed run continues.
    Run folders written before plans existed hold the same sections, and read the same."""
    path = Path(run_dir) / "run.json"
    run = read_json(path, what="run description")
    cfg = section(run, "config", GPTConfig.from_dict, path)
    tcfg = section(run, "train", lambda train: TrainConfig(**train), path)
    return run, cfg, tcfg


def check_resume(cfg, checkpoint, tokenizer):
    """Refuse a checkpoint whose architecture or vocabulary differs from the run's."""
    saved = checkpoint_config(checkpoint)
    if saved != cfg:
        raise ValueError(f"checkpoint config {saved} differs from run.json's {cfg}")
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(
            f"the run's tokenizer has {tokenizer.vocab_size} tokens but its model expects "
            f"{cfg.vocab_size}: the tokenizer folder was changed; restore it or start a new run"
        )
    return cfg


def print_estimate(cfg, tcfg, world=SINGLE):
    mine, micro, _ = rank_micro_batches(world, tcfg.batch_size, tcfg.micro_batch_size)
    lines = describe(cfg, mine.stop - mine.start, cfg.n_ctx, micro_batch_size=micro,
                     processes=world.local_size)
    print("model: " + "\n".join(lines))
    if world.size == 1:
        print(f"batch: {tcfg.batch_size} x {cfg.n_ctx} tokens per update, in micro-batches of "
              f"{tcfg.micro_batch_size}")
    else:
        print("\n".join(world.describe(tcfg.batch_size, tcfg.micro_batch_size, tcfg.lr)))
