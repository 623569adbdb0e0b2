"""The pre-training job: a folder of texts -> tokenizer -> token ids -> model -> a run folder.

    RUN/
        run.json          what the run is: model config, training config, data, tokenizer
        tokenizer/        the BPE files (trained here unless --tokenizer was given)
        metrics.jsonl     one JSON line per logged step (step, loss, lr, val_loss, ...)
        checkpoints/      last and best (see checkpoint.py)
        loss.png, lr.png  training and validation loss, learning rate (written at the end)

A run folder belongs to one run: starting a new run in it needs `force=True`, and resuming
checks that the tokenizer and the architecture are the ones the run started with.

On several ranks (`world`, see distributed.py) rank 0 alone prepares the run as above; the
others receive the configs, the token ids, the weights and the optimizer state from it.
"""

import hashlib
import shutil
from dataclasses import asdict
from pathlib import Path

from ..config import GPTConfig
from ..corpus.texts import cache_file, chars_and_bytes, encode_texts, load_text_dir, split_documents
from ..errors import FormatError
from ..fileio import read_json, section, write_json_atomic
from ..model.gpt import GPT
from ..model.huggingface import from_pretrained
from ..plots import plot_losses, plot_lr
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import load_checkpoint, read_index
from ..training.distributed import SINGLE
from ..training.estimate import describe
from ..training.lm_objective import TrainConfig, check_rank_fits, pretrain, rank_micro_batches
from ..training.optim import AdamW

FORMAT_VERSION = 1
DROPOUTS = ("embd_pdrop", "attn_pdrop", "resid_pdrop")


def fingerprint(directory):
    """sha256 over the names and bytes of a folder's files: changes when the tokenizer does."""
    h = hashlib.sha256()
    for path in sorted(Path(directory).iterdir()):
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def check_run_dir(run_dir, resume, force):
    """Raise unless run_dir may be used as asked (changes nothing)."""
    run_dir = Path(run_dir)
    is_run = (run_dir / "run.json").exists()
    if resume:
        if not is_run or read_index(run_dir) is None:
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: no run.json and checkpoint there; "
                "start a run with --out without --resume"
            )
    elif run_dir.exists() and any(run_dir.iterdir()) and not force:
        what = "holds another run" if is_run else "is not empty"
        raise FileExistsError(
            f"{run_dir} {what}; use --resume to continue it, another --out, or --force "
            "to delete it and start over"
        )
    return run_dir


def start_run_dir(run_dir):
    """An empty run folder (what force allowed to be there is deleted)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


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
    """(run.json as a dict, its GPTConfig, its TrainConfig): what a resumed run continues."""
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


def checkpoint_config(checkpoint):
    """The GPTConfig a checkpoint's state.json records (load_checkpoint built and checked it)."""
    if checkpoint.config is None:
        raise FormatError(f"{checkpoint.folder / 'state.json'}: no 'config' section")
    return checkpoint.config


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


def run_pretraining(text_dir, run_dir, preset="small", tcfg=None, tokenizer_dir=None,
                    vocab_size=None, bpe_mode="bytes", n_ctx=None, resume=False, force=False,
                    device="cpu", progress=True, cache_dir=None, dropout=None, world=SINGLE):
    """Pre-train (or resume) a model on the .txt files of text_dir; returns a summary dict.

    Token ids are cached in cache_dir (default: text_dir/.minigpt1-cache), keyed by the texts
    and the tokenizer, so a second run on the same data skips the encoding. `dropout`, if
    given, replaces the preset's three dropout rates (GPT-1: 0.1). On several ranks, rank 0
    prepares the run and every rank trains; only rank 0 returns the summary (the others None).
    """
    run = {}
    if world.is_writer:  # the other ranks receive run["shared"] below
        run = prepare_pretraining(text_dir, run_dir, preset, tcfg, tokenizer_dir, vocab_size,
                                  bpe_mode, n_ctx, resume, force, cache_dir, dropout, world)
    shared = world.broadcast(run.get("shared"))
    cfg, tcfg = GPTConfig.from_dict(shared["config"]), TrainConfig(**shared["train"])
    checkpoint = run.get("checkpoint")
    model = GPT(cfg, seed=tcfg.seed, device=device, params=checkpoint and checkpoint.params)
    optimizer = AdamW(model.params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if checkpoint:
        optimizer.load_state_dict(checkpoint.optimizer)
    world.share_weights(model, optimizer)  # all ranks start from rank 0's weights
    result = pretrain(model, optimizer, shared["train_ids"], shared["val_ids"], tcfg,
                      Path(run_dir), shared["start_step"], shared["total_steps"],
                      run.get("val_units_per_token"), run.get("unit", "char"), progress, world)
    if not world.is_writer:
        return None
    metrics = Path(run_dir) / "metrics.jsonl"
    plot_losses(metrics, Path(run_dir) / "loss.png", title=f"pre-training {preset} on {text_dir}")
    plot_lr(metrics, Path(run_dir) / "lr.png")
    return {"run_dir": Path(run_dir), "model": model, "tokenizer": run["tokenizer"], **result}


def prepare_pretraining(text_dir, run_dir, preset, tcfg, tokenizer_dir, vocab_size, bpe_mode,
                        n_ctx, resume, force, cache_dir, dropout, world=SINGLE):
    """Check, read and write what a run needs before its first update: the run folder, the
    tokenizer, the token ids, run.json or the checkpoint to resume. Returns them in a dict."""
    run_dir = check_run_dir(run_dir, resume, force)
    train_texts, val_texts = split_documents(load_text_dir(text_dir))  # may fail: before any write
    preset_cfg = GPTConfig.preset(preset)
    if not resume:  # refuse an update that cannot fit in memory before anything is written
        tcfg = tcfg or TrainConfig()
        planned = GPTConfig.preset(preset, vocab_size=vocab_size or preset_cfg.vocab_size,
                                   n_ctx=n_ctx or preset_cfg.n_ctx)
        check_rank_fits(planned, world, tcfg.batch_size, tcfg.micro_batch_size)
        start_run_dir(run_dir)
    tokenizer = get_tokenizer(run_dir, train_texts, tokenizer_dir,
                              vocab_size or preset_cfg.vocab_size, bpe_mode, resume)
    key = fingerprint(run_dir / "tokenizer")
    cache = Path(cache_dir or Path(text_dir) / ".minigpt1-cache")
    train_ids = encode_texts(train_texts, tokenizer, cache_file(cache, "train", train_texts, key))
    val_ids = encode_texts(val_texts, tokenizer, cache_file(cache, "val", val_texts, key))
    if resume:
        _, cfg, tcfg = read_run(run_dir)
        checkpoint = load_checkpoint(run_dir)
        check_resume(cfg, checkpoint, tokenizer)
        check_rank_fits(cfg, world, tcfg.batch_size, tcfg.micro_batch_size)
        start_step, total_steps = checkpoint.step, checkpoint.state["total_steps"]
        print(f"resuming {run_dir} at step {start_step} of {total_steps}")
    else:
        rates = {} if dropout is None else dict.fromkeys(DROPOUTS, dropout)
        cfg = GPTConfig.preset(preset, vocab_size=tokenizer.vocab_size,
                               n_ctx=n_ctx or preset_cfg.n_ctx, **rates)
        write_json_atomic(run_dir / "run.json", {
            "format_version": FORMAT_VERSION, "kind": "pretrain", "preset": preset,
            "config": cfg.to_dict(), "train": asdict(tcfg), "text_dir": str(text_dir),
            "bpe_mode": tokenizer.mode, "tokenizer_fingerprint": key,
        })  # fmt: skip
        checkpoint, start_step, total_steps = None, 0, None
    print_estimate(cfg, tcfg, world)
    print(f"data: {len(train_ids):,} training and {len(val_ids):,} validation tokens "
          f"({tokenizer.mode} BPE, {tokenizer.vocab_size:,} tokens)")
    unit = "byte" if tokenizer.mode == "bytes" else "char"
    chars, nbytes = chars_and_bytes(val_texts)
    return {"tokenizer": tokenizer, "checkpoint": checkpoint, "unit": unit,
            "val_units_per_token": len(val_ids) / (nbytes if unit == "byte" else chars),
            "shared": {"config": cfg.to_dict(), "train": asdict(tcfg), "train_ids": train_ids,
                       "val_ids": val_ids, "start_step": start_step, "total_steps": total_steps}}


def load_model(path, which="last", device="cpu"):
    """(model, tokenizer) from a run folder (its last or best checkpoint) or from a
    HuggingFace-style folder (config.json + model.safetensors + vocab.json + merges.txt)."""
    path = Path(path)
    if (path / "checkpoints" / "index.json").exists():
        check_tokenizer(path / "tokenizer", path)
        checkpoint = load_checkpoint(path, which)
        cfg = checkpoint_config(checkpoint)
        # a fine-tuned run also holds its task head (clf.*): the GPT itself is the rest
        body = {k: v for k, v in checkpoint.params.items() if not k.startswith("clf.")}
        model = GPT(cfg, device=device, params=body)
        tokenizer = BPETokenizer.load(path / "tokenizer")
    elif (path / "config.json").exists():
        check_tokenizer(path, path)
        model = from_pretrained(path, device=device)
        # the real openai-gpt files carry no minigpt1_bpe.json: they are GPT-1's mode
        mode = None if (path / "minigpt1_bpe.json").exists() else "gpt1"
        tokenizer = BPETokenizer.load(path, mode)
    else:
        raise FileNotFoundError(
            f"{path} is neither a run folder (checkpoints/index.json) nor a model folder "
            "(config.json + model.safetensors)"
        )
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model only {model.cfg.vocab_size}: they do not belong together")
    return model, tokenizer


def check_tokenizer(folder, model_dir):
    if not (folder / "vocab.json").exists() or not (folder / "merges.txt").exists():
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer ({folder}/vocab.json and merges.txt): a model is "
            "only usable with the tokenizer it was trained with; copy that tokenizer's files "
            f"into {folder}"
        )


def export_run(run_dir, out_dir, which="best", force=False):
    """Weights and tokenizer of a run as a HuggingFace openai-gpt folder (no optimizer)."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and not force:
        raise FileExistsError(f"{out_dir} already holds a model; choose another --out or --force")
    if which == "best" and "best" not in (read_index(run_dir) or {}):
        which = "last"  # a run stopped before its first evaluation has no best yet
    model, tokenizer = load_model(run_dir, which)
    model.save_pretrained(out_dir)
    tokenizer.save(out_dir)
    return out_dir
