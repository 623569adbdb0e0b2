"""The pre-training job: a folder of texts -> tokenizer -> token ids -> model -> a run folder.

    RUN/
        run.json          what the run is: model config, training config, data, tokenizer,
                          and the plan it was started with
        tokenizer/        the BPE files (trained here unless the plan names a tokenizer)
        metrics.jsonl     one JSON line per logged step (step, loss, lr, val_loss, ...)
        checkpoints/      last and best (see training/checkpoint.py)
        loss.png, lr.png  training and validation loss, learning rate (written at the end)

A run folder belongs to one run: starting a new run in it needs `force`, and resuming checks
that the texts, the tokenizer and the architecture are the ones the run started with. A run
folder is made only once every check has passed, run.json last; a run that fails before its
first checkpoint resumes from step 0.

On several ranks (`world`, see distributed.py) rank 0 alone prepares the run as above; the
others receive the plan, the model config and the token ids from it, then the weights and
the optimizer state.
"""

import hashlib
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..config import PRESETS, GPTConfig
from ..corpus.text_folders import (
    cache_file,
    chars_and_bytes,
    encode_texts,
    eval_windows,
    load_text_dir,
    split_documents,
)
from ..errors import FormatError
from ..fileio import read_json, section, write_json_atomic
from ..model.gpt import GPT
from ..plots import plot_losses, plot_lr
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import Checkpoint, load_checkpoint, read_index
from ..training.distributed import SINGLE
from ..training.estimate import describe
from ..training.lm_objective import TokenData, TrainConfig, pretrain
from ..training.loop import MEASURED_STEPS
from ..training.optim import AdamW
from ..training.update import check_rank_fits, rank_micro_batches
from .run_folder import (
    FORMAT_VERSION,
    check_run_dir,
    checkpoint_config,
    fingerprint,
    held_by_writer,
    plan_json,
    record_config,
    run_tokenizer_fingerprint,
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
    n_ctx: int | None = None  # context length (default: the preset's)
    n_layer: int | None = None  # blocks (default: the preset's)
    n_embd: int | None = None  # width of the residual stream (default: the preset's)
    n_head: int | None = None  # attention heads, dividing n_embd (default: the preset's)
    dropout: float | None = None  # replaces the preset's three dropout rates (GPT-1: 0.1)
    model: dict = field(default_factory=dict)  # GPTConfig fields of --config FILE.json
    resume: bool = False  # continue the run in run_dir (its own settings, from run.json)
    extend: bool = False  # with resume: a larger train.max_steps, a new train.minutes extend it
    force: bool = False  # delete a run already in run_dir and start over
    device: str = "cpu"  # cpu | cuda
    cache_dir: str | Path | None = None  # token-id cache (default: the per-user cache folder)

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
    with held_by_writer(plan.run_dir, world):  # one writer per run folder, for the whole job
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
                          run.total_steps, progress, world,
                          record_total(run_dir) if world.is_writer else None)
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
    """Check, read and write what a run needs before its first update. Every check (texts,
    tokenizer, token cache, memory, evaluation windows) passes before the run folder is
    touched; a resumed run's texts and tokenizer must be the ones its run.json records."""
    plan = replace(plan, run_dir=check_run_dir(plan.run_dir, plan.resume, plan.force))
    documents = load_text_dir(plan.text_dir)
    train_texts, val_texts = split_documents(documents)
    if plan.resume:
        run = resume_run(plan, documents, train_texts, val_texts, world)
    else:
        run = new_run(plan, documents, train_texts, val_texts, world)
    print_estimate(run.cfg, run.plan.train, world)
    print(f"data: {len(run.data.train):,} training and {len(run.data.val):,} validation tokens "
          f"({run.tokenizer.mode} BPE, {run.tokenizer.vocab_size:,} tokens)")
    return run


def new_run(plan, documents, train_texts, val_texts, world=SINGLE):
    """A fresh run: checked in memory first, then its folder, tokenizer/ and run.json written
    (run.json last: a folder that holds it holds everything a --resume needs)."""
    planned = model_config(plan)
    check_rank_fits(planned, world, plan.train.batch_size, plan.train.micro_batch_size)
    tokenizer = get_tokenizer(train_texts, plan.tokenizer_dir, planned.vocab_size, plan.bpe_mode)
    key = tokenizer_key(tokenizer)
    data = token_data(plan, tokenizer, key, train_texts, val_texts)
    eval_windows(data.val, planned.n_ctx + 1, plan.train.eval_windows)  # too little validation?
    cfg = model_config(plan, vocab_size=tokenizer.vocab_size)
    start_run_dir(plan.run_dir)
    tokenizer.save(plan.run_dir / "tokenizer")
    write_json_atomic(plan.run_dir / "run.json", {
        "format_version": FORMAT_VERSION, "kind": "pretrain", "preset": plan.preset,
        "config": cfg.to_dict(), "train": asdict(plan.train), "text_dir": str(plan.text_dir),
        "texts": text_digests(documents), "bpe_mode": tokenizer.mode,
        "tokenizer_fingerprint": key, "plan": plan_json(plan),
        "total_steps": None,  # until a budget is fitted (record_total)
    })  # fmt: skip
    return PreparedRun(plan, cfg, data, tokenizer=tokenizer)


def model_config(plan, vocab_size=None):
    """The GPTConfig a fresh run trains: the preset, then the fields of --config FILE.json,
    then the size flags (--n-layer, --n-embd, --n-head, --n-ctx, --dropout, --vocab-size);
    `vocab_size`, the tokenizer's once it is known, has the last word."""
    flags = {name: getattr(plan, name) for name in SIZE_FLAGS if getattr(plan, name) is not None}
    if plan.dropout is not None:
        flags.update(dict.fromkeys(DROPOUTS, plan.dropout))
    if vocab_size is not None:
        flags["vocab_size"] = vocab_size
    return GPTConfig.preset(plan.preset, **{**plan.model, **flags})


# the plan's fields that override a GPTConfig field of the same name
SIZE_FLAGS = ("vocab_size", "n_ctx", "n_layer", "n_embd", "n_head")


def tokenizer_key(tokenizer):
    """The fingerprint of the folder tokenizer.save writes, known before any run folder is."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save(folder)
        return fingerprint(folder)


def text_digests(documents):
    """{text name: sha256 of its kind and text}: run.json's record of what the run reads."""
    return {doc.name: hashlib.sha256(f"{doc.kind}\0{doc.text}".encode()).hexdigest()
            for doc in documents}


def token_data(plan, tokenizer, key, train_texts, val_texts):
    """The texts' token ids, cached under a name made of the texts and the tokenizer's
    fingerprint `key`, and the validation text's tokens per byte (or character)."""
    cache = plan.cache_dir  # None: the per-user cache, never text_dir (default_cache_dir)
    train_ids = encode_texts(train_texts, tokenizer, cache_file(cache, "train", train_texts, key))
    val_ids = encode_texts(val_texts, tokenizer, cache_file(cache, "val", val_texts, key))
    unit = "byte" if tokenizer.mode == "bytes" else "char"
    chars, nbytes = chars_and_bytes(val_texts)
    return TokenData(train_ids, val_ids, len(val_ids) / (nbytes if unit == "byte" else chars),
                     unit)


def resume_run(plan, documents, train_texts, val_texts, world=SINGLE):
    """The PreparedRun of the run in plan.run_dir, at its last checkpoint (step 0 when a
    failure came before the first): run.json's configs say what it continues, extended by a
    larger plan.train.max_steps or a new plan.train.minutes (budget_extension)."""
    run_dir = Path(plan.run_dir)
    run, cfg, recorded = read_run(run_dir)
    check_texts(run, plan.text_dir, documents)
    tokenizer = BPETokenizer.load(run_dir / "tokenizer")
    checkpoint = load_checkpoint(run_dir) if read_index(run_dir) is not None else None
    check_resume(cfg, checkpoint, tokenizer)  # a tokenizer of another size says so
    key = run_tokenizer_fingerprint(run, run_dir)
    tcfg = budget_extension(recorded, plan.train) if plan.extend else recorded
    check_rank_fits(cfg, world, tcfg.batch_size, tcfg.micro_batch_size)
    data = token_data(plan, tokenizer, key, train_texts, val_texts)
    total = resumed_total(run, recorded, tcfg, checkpoint)
    if tcfg != recorded:  # the next bare --resume continues the extended run
        record_config(run_dir, run, "train", tcfg, total_steps=total)
    start = checkpoint.step if checkpoint else 0
    print(f"resuming {run_dir} at step {start} of "
          f"{total or f'the updates that fit in {tcfg.minutes:g} minutes'}")
    return PreparedRun(replace(plan, train=tcfg), cfg, data, start, total, tokenizer, checkpoint)


def check_texts(run, text_dir, documents):
    """Refuse texts that differ from those the run started on, naming the files (run.json
    written before texts were recorded says nothing, and nothing is compared)."""
    recorded = run.get("texts")
    if not isinstance(recorded, dict):
        return
    now = text_digests(documents)
    changes = ([f"{name}.txt changed" for name in now if name in recorded
                and now[name] != recorded[name]]
               + [f"{name}.txt added" for name in now if name not in recorded]
               + [f"{name}.txt removed" for name in recorded if name not in now])
    if changes:
        raise ValueError(
            f"the texts in {text_dir} are not those the run started on ({', '.join(changes)}): "
            "restore them to continue this run, or start a new run on the new texts")


def budget_extension(recorded, given):
    """The recorded TrainConfig, with the only changes a resume accepts: a larger max_steps, a
    new minutes budget."""
    max_steps = max(recorded.max_steps, given.max_steps)
    minutes = recorded.minutes if given.minutes is None else given.minutes
    return replace(recorded, max_steps=max_steps, minutes=minutes)


def resumed_total(run, recorded, tcfg, checkpoint):
    """The update the resumed run ends at, or None to fit it to tcfg.minutes again: a new
    budget counts from this session, and a budget the first session had no time to fit (it
    stopped before update MEASURED_STEPS + 2) is fitted now."""
    if tcfg.minutes != recorded.minutes:
        return None
    if tcfg.max_steps != recorded.max_steps:
        return tcfg.max_steps  # the cosine schedule stretches to the new end
    fitted = checkpoint and (recorded.minutes is None or checkpoint.step >= MEASURED_STEPS + 2)
    if "total_steps" not in run and fitted:  # a run.json older than the record of the total:
        return checkpoint.state["total_steps"]  # a checkpoint saved after the fit holds it
    if isinstance(run.get("total_steps"), int):
        return run["total_steps"]  # fitted, and recorded as soon as it was
    return None if recorded.minutes else recorded.max_steps


def record_total(run_dir):
    """The `fitted` callback of pretrain(): run.json keeps the total a budget was fitted to, as
    soon as it is, so that a resume before the next checkpoint still knows it."""

    def fitted(total):
        path = Path(run_dir) / "run.json"
        write_json_atomic(path, {**read_json(path, what="run description"), "total_steps": total})

    return fitted


def get_tokenizer(train_texts, tokenizer_dir=None, vocab_size=8192, mode="bytes"):
    """A fresh run's tokenizer, in memory: read from tokenizer_dir, or trained here."""
    if tokenizer_dir is not None:
        return BPETokenizer.load(tokenizer_dir)
    print(f"training a {mode} BPE tokenizer with {vocab_size:,} tokens on the training text")
    return BPETokenizer.train(train_texts, vocab_size, mode=mode)


def read_run(run_dir):
    """(run.json as a dict, its GPTConfig, its TrainConfig): what a resumed run continues.
    Run folders written before plans existed hold the same sections, and read the same."""
    path = Path(run_dir) / "run.json"
    run = read_json(path, what="run description")
    cfg = section(run, "config", GPTConfig.from_dict, path)
    tcfg = section(run, "train", lambda train: TrainConfig(**train), path)
    return run, cfg, tcfg


def recorded_plan(run_dir):
    """The PretrainPlan a run folder's run.json records, as a resume continues it: its "plan",
    or for a run.json older than plans the same rebuilt from its other sections."""
    run, cfg, tcfg = read_run(run_dir)
    path = Path(run_dir) / "run.json"
    if "plan" in run:
        plan = section(run, "plan", PretrainPlan.from_json, path)
    else:
        rates = {cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop}
        plan = PretrainPlan(run.get("text_dir"), run_dir, run.get("preset"), tcfg,
                            vocab_size=cfg.vocab_size, bpe_mode=run.get("bpe_mode", "bytes"),
                            n_ctx=cfg.n_ctx, dropout=rates.pop() if len(rates) == 1 else None)
    bad = [name for name, kind in PLAN_TYPES.items()
           if not isinstance(getattr(plan, name), kind) or isinstance(getattr(plan, name), bool)]
    if bad or plan.preset not in PRESETS or plan.bpe_mode not in ("bytes", "gpt1"):
        raise FormatError(f"{path}: bad 'plan' section ({', '.join(bad) or 'preset, bpe_mode'})")
    return replace(plan, train=tcfg, run_dir=run_dir, resume=True, force=False)


# what recorded_plan accepts in run.json's "plan" (its "train" is read as TrainConfig)
PLAN_TYPES = {"text_dir": str, "preset": str, "tokenizer_dir": str | None, "bpe_mode": str,
              "vocab_size": int | None, "n_ctx": int | None, "n_layer": int | None,
              "n_embd": int | None, "n_head": int | None, "dropout": float | int | None,
              "model": dict, "cache_dir": str | None}


def check_resume(cfg, checkpoint, tokenizer):
    """Refuse a checkpoint whose architecture or vocabulary differs from the run's."""
    saved = checkpoint_config(checkpoint) if checkpoint else cfg
    if saved != cfg:
        raise ValueError(f"checkpoint config {saved} differs from run.json's {cfg}")
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(
            f"the run's tokenizer has {tokenizer.vocab_size} tokens but its model expects "
            f"{cfg.vocab_size}: the tokenizer folder was changed; restore it or start a new run"
        )
    return cfg


def print_estimate(cfg, tcfg, world=SINGLE):
    mine, micro = rank_micro_batches(world, tcfg.batch_size, tcfg.micro_batch_size)
    lines = describe(cfg, mine.stop - mine.start, cfg.n_ctx, micro_batch_size=micro,
                     processes=world.local_size)
    print("model: " + "\n".join(lines))
    if world.size == 1:
        print(f"batch: {tcfg.batch_size} x {cfg.n_ctx} tokens per update, in micro-batches of "
              f"{tcfg.micro_batch_size}")
    else:
        print("\n".join(world.describe(tcfg.batch_size, tcfg.micro_batch_size, tcfg.lr)))
