"""Every flag of every command is typed and ranged as the command line is read.

A bad value ends with exit status 2 and one paragraph (argparse's usage, then one line that
names the flag: "argument --lr: must be a finite number >= 0, got nan"), before anything is
read or written: no traceback, no "unexpected ... (a bug)", no folder. Each case runs in an
empty folder of its own, its paths inside it; the folder must stay empty. None of the paths
exists, so a flag that slipped through would end in another status or message, not pass.

The table holds 301 bad command lines: demo 23, prepare 4, pretrain 70, finetune 55,
ablation 29, transfer 34, zero-shot 19, generate 25, export 7, evaluate 9, estimate 10,
bpe train 11, bpe encode 1, bpe decode 3, bpe show 1.
"""

import argparse
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from minigpt1.cli import build_parser, main
from minigpt1.training.lm_objective import TrainConfig
from minigpt1.training.task_objective import FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]

# the valid rest of each command line; every path is relative, so inside the test's folder
BASE = {
    "demo": ["demo", "--text-dir", "texts", "--data-dir", "data", "--out", "run"],
    "prepare": ["prepare", "shakespeare", "--data-dir", "data"],
    "pretrain": ["pretrain", "--text-dir", "texts", "--out", "run", "--preset", "tiny"],
    "finetune": ["finetune", "--checkpoint", "ckpt", "--task", "genre", "--data", "texts",
                 "--out", "run"],
    "ablation": ["ablation", "--checkpoint", "ckpt", "--data", "texts", "--out", "run"],
    "transfer": ["transfer", "--checkpoint", "ckpt", "--data", "texts", "--out", "run"],
    "zero-shot": ["zero-shot", "--checkpoint", "ckpt", "--data", "texts", "--out", "run"],
    "generate": ["generate", "--checkpoint", "ckpt"],
    "export": ["export", "--checkpoint", "ckpt", "--out", "run"],
    "evaluate": ["evaluate", "--checkpoint", "ckpt", "--text-dir", "texts"],
    "estimate": ["estimate", "--no-measure"],
    "bpe train": ["bpe", "train", "--input", "texts", "--vocab-size", "300", "--out", "tok"],
}

# bad values by kind of flag ("-1" and "" need `--flag=value`, which the cases use)
POSITIVE = ["0", "-2", "abc", "1.5", "1000000001"]
COUNT = ["-1", "abc", "1000000001"]
SEED = ["-1", "4294967296", "x"]
FINITE = ["nan", "inf", "-0.5", "abc"]  # a finite number >= 0
POSITIVE_FLOAT = ["0", "nan", "inf", "-1"]
RATE = ["1", "-0.1", "nan"]  # in [0, 1)
PATH = [""]
WHICH = ["middle", "", "step-1", "step-00000001", "last/"]  # best | last | step-NNNNNNN
TASKS = ["nope", "", "sst2"]  # the Shakespeare tasks only

FLAGS = {  # command: {flag: bad values}
    "demo": {"--text-dir": PATH, "--preset": ["huge", ""], "--vocab-size": [*POSITIVE, "255"],
             "--bpe-mode": ["words"], "--seed": SEED,
             "--minutes": [*POSITIVE_FLOAT, "1e999", "1000001", "-inf"],
             "--data-dir": PATH, "--out": PATH},
    "prepare": {"--data-dir": PATH},
    "pretrain": {"--text-dir": PATH, "--preset": ["huge"], "--vocab-size": [*POSITIVE, "100"],
                 "--bpe-mode": ["words"], "--seed": SEED, "--out": PATH, "--tokenizer": PATH,
                 "--n-ctx": ["1", "0", "-5", "abc"], "--dropout": RATE, "--device": ["tpu"],
                 "--dist-timeout": [*POSITIVE_FLOAT, "1e7"], "--max-steps": POSITIVE,
                 "--batch-size": ["0", "-8"], "--micro-batch-size": ["0", "-1", "abc"],
                 "--lr": FINITE, "--min-lr-ratio": ["1.5", "-0.1", "nan"],
                 "--warmup-steps": ["-10", "abc", "1000000001"], "--weight-decay": FINITE,
                 "--grad-clip": ["0", "nan", "inf", "-1"], "--eval-every": ["0", "-1"],
                 "--eval-windows": ["0", "-3"], "--log-every": ["0", "abc"],
                 "--minutes": ["inf", "nan", "0", "-5", "1e999"]},
    "finetune": {"--checkpoint": PATH, "--task": ["nope", ""], "--data": PATH, "--out": PATH,
                 "--which": WHICH, "--device": ["tpu"], "--dist-timeout": ["inf", "0"],
                 "--epochs": ["0", "-1", "abc"], "--batch-size": ["0", "-4"],
                 "--micro-batch-size": ["0", "-1"], "--lr": FINITE, "--warmup": RATE,
                 "--weight-decay": ["nan", "-1"], "--grad-clip": ["0", "inf"],
                 "--lm-coef": FINITE, "--clf-pdrop": RATE, "--transfer-layers": ["-2", "abc"],
                 "--max-train-examples": ["0", "-1"], "--eval-every": ["-1", "abc"],
                 "--log-every": ["0"], "--seed": SEED, "--n-validation": ["0", "-1", "abc"]},
    "ablation": {"--checkpoint": PATH, "--data": PATH, "--out": PATH, "--tasks": TASKS,
                 "--device": ["tpu"], "--seeds": ["0", "-1", "abc"], "--which": WHICH,
                 "--epochs": ["0", "abc"], "--lr": ["nan", "-1"], "--warmup": ["1"],
                 "--clf-pdrop": ["1.5"], "--grad-clip": ["0"], "--max-train-examples": ["0"],
                 "--eval-every": ["-1"], "--seed": ["-1"], "--micro-batch-size": ["0"],
                 "--transfer-layers": ["0"], "--lm-coef": ["0"]},  # ablation sets these two
    "transfer": {"--checkpoint": PATH, "--data": PATH, "--out": PATH, "--tasks": TASKS,
                 "--device": ["tpu"], "--layers": ["-2", "abc", "1.5", ""],
                 "--seeds": ["0", "abc"], "--which": WHICH, "--epochs": ["0"],
                 "--batch-size": ["0"], "--micro-batch-size": ["0"], "--lr": ["nan"],
                 "--warmup": ["1"], "--weight-decay": ["-1"], "--grad-clip": ["0"],
                 "--lm-coef": ["-1", "inf"], "--clf-pdrop": ["1"],
                 "--max-train-examples": ["0"], "--eval-every": ["-1"], "--log-every": ["0"],
                 "--seed": ["-1"], "--transfer-layers": ["0"]},  # --layers sets it
    "zero-shot": {"--checkpoint": PATH, "--data": PATH, "--out": PATH, "--tasks": TASKS,
                  "--device": ["tpu"], "--split": ["dev", ""], "--max-examples": POSITIVE,
                  "--seed": SEED, "--which": ["best"]},  # it scores every checkpoint
    "generate": {"--checkpoint": PATH, "--prompt": [""],
                 "--max-new-tokens": ["-1", "abc", "100001", "10000000000"],
                 "--temperature": ["-1", "nan", "inf", "1e-5", "1e-320", "1001"],
                 "--top-k": ["0", "-1", "abc"], "--top-p": ["0", "2", "nan"],
                 "--seed": ["-1", "4294967296"], "--which": WHICH},
    "export": {"--checkpoint": PATH, "--out": PATH, "--which": WHICH},
    "evaluate": {"--checkpoint": PATH, "--which": WHICH, "--text-dir": PATH,
                 "--batch-size": ["0", "abc"]},
    "estimate": {"--preset": ["huge"], "--batch-size": ["0", "-1", "abc", "1000000001"],
                 "--n-ctx": ["0", "-5", "abc", "1.5", "1"]},
    "bpe train": {"--input": PATH, "--vocab-size": ["0", "-1", "abc", "1000000001"],
                  "--bpe-mode": ["words"], "--special-tokens": [""], "--trainer": ["slow"],
                  "--out": PATH},
}


def _flag_cases():
    for command, flags in FLAGS.items():
        for flag, values in flags.items():
            for value in values:
                yield command, [*BASE[command], f"{flag}={value}"], flag


# lines whose bad part is not one `--flag=value`: positionals, and flags wrong together
OTHER_CASES = [
    ("demo", [*BASE["demo"], "--bpe-mode", "bytes", "--vocab-size", "100"], "--vocab-size"),
    ("prepare", ["prepare", "wikipedia", "--data-dir", "data"], "corpus"),
    ("prepare", ["prepare", "", "--data-dir", "data"], "corpus"),
    ("prepare", ["prepare", "shakespeare", "--data-dir"], "--data-dir"),
    ("pretrain", [*BASE["pretrain"], "--tokenizer", "tok", "--vocab-size", "300"],
     "--vocab-size"),
    ("pretrain", [*BASE["pretrain"], "--n-embd", "100", "--n-head", "3"], "--n-head"),
    ("pretrain", [*BASE["pretrain"], "--batch-size", "6", "--micro-batch-size", "4"],
     "--micro-batch-size"),
    ("pretrain", [*BASE["pretrain"], "--resume", "--force"], "--force"),
    ("finetune", [*BASE["finetune"], "--resume", "--force"], "--force"),
    ("finetune", [*BASE["finetune"], "--task", "sst2", "--data="], "--data"),
    ("finetune", [*BASE["finetune"], "--n-validation", "100"], "--n-validation"),  # genre
    ("finetune", [*BASE["finetune"], "--task", "sst2", "--n-validation", "374"],
     "--n-validation"),
    ("ablation", [*BASE["ablation"], "--tasks"], "--tasks"),
    ("transfer", [*BASE["transfer"], "--layers"], "--layers"),
    ("zero-shot", ["zero-shot", "--out", "run"], "--checkpoint"),
    ("bpe train", [*BASE["bpe train"], "--bpe-mode", "bytes", "--vocab-size", "257",
                   "--special-tokens", "_start_", "_end_"], "--vocab-size"),
    ("bpe train", [*BASE["bpe train"], "--input", "texts", ""], "--input"),
    ("bpe encode", ["bpe", "encode", "--tokenizer=", "text"], "--tokenizer"),
    ("bpe decode", ["bpe", "decode", "--tokenizer", "tok", "1", "-1"], "ids"),
    ("bpe decode", ["bpe", "decode", "--tokenizer", "tok", "1000000001"], "ids"),
    ("bpe decode", ["bpe", "decode", "--tokenizer", "tok", "--bpe-mode", "words"],
     "--bpe-mode"),
    ("bpe show", ["bpe", "show", "--tokenizer", "tok", ""], "word"),
]

CASES = [*_flag_cases(), *OTHER_CASES]


def _case_id(case):
    command, argv, _ = case
    return " ".join([command, *argv[len(BASE.get(command, [])):]])


def one_paragraph(err):
    """stderr's message, checked to be one paragraph with no traceback; its last line."""
    assert "Traceback" not in err and "unexpected" not in err, err
    message = err.strip()
    assert message and "\n\n" not in message, err
    return message.splitlines()[-1]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_a_bad_flag_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, case):
    command, argv, flag = case
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    line = one_paragraph(captured.err)
    assert code == 2, captured.err
    assert flag in line, line  # "... error: argument --lr: must be ..., got nan"
    # argparse's line (the top parser's for a flag no command has), or ours after a check
    assert line.startswith(("python -m minigpt1", "error: ")) and "error: " in line, line
    assert captured.out == "" and list(tmp_path.iterdir()) == []


def test_the_table_is_as_large_and_wide_as_its_docstring_says():
    counts = Counter(command for command, _, _ in CASES)
    said = ", ".join(f"{command} {n}" for command, n in counts.items())
    text = " ".join(__doc__.split())
    assert f"The table holds {len(CASES)} bad command lines: {said}." in text, said
    assert len(CASES) >= 150
    assert set(counts) == {*BASE, "bpe encode", "bpe decode", "bpe show"}


def _value_actions(parser, command=()):
    """(command, action) for every flag and positional that takes a value, in every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _value_actions(sub, (*command, name))
        elif action.nargs != 0:  # store_true and --help take none
            yield " ".join(command), action


def test_every_flag_has_a_type_or_choices():
    """A flag added without a range would fail here; bpe encode's text may be anything."""
    untyped = [f"{command} {action.dest}" for command, action in _value_actions(build_parser())
               if action.type is None and action.choices is None]
    assert untyped == ["bpe encode text"]


@pytest.mark.parametrize("argv, flag", [
    (["pretrain", "--text-dir", "texts", "--out", "run", "--micro-batch-size", "0"],
     "--micro-batch-size"),
    (["pretrain", "--text-dir", "texts", "--out", "run", "--minutes", "inf"], "--minutes"),
    (["pretrain", "--text-dir", "texts", "--out=", "--force"], "--out"),
    (["generate", "--checkpoint", "ckpt", "--seed", "-1"], "--seed"),
], ids=["micro-batch-zero", "minutes-inf", "out-empty-force", "seed-negative"])
def test_the_terminal_sees_the_flag_named_and_nothing_written(tmp_path, argv, flag):
    """`--out '' --force` once emptied the current folder: a user's file must survive."""
    (tmp_path / "notes.txt").write_text("mine\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # run from that folder
    result = subprocess.run([sys.executable, "-m", "minigpt1", *argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    line = one_paragraph(result.stderr)
    assert result.returncode == 2 and result.stdout == ""
    assert line.startswith(f"python -m minigpt1 {argv[0]}: error: argument {flag}: "), line
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("config, field, value", [
    (TrainConfig, "micro_batch_size", 0), (TrainConfig, "minutes", math.inf),
    (TrainConfig, "warmup_steps", -10), (FinetuneConfig, "clf_pdrop", 1.0),
])
def test_the_configs_refuse_the_same_values_from_python(config, field, value):
    """A library caller meets the ranges too: a ValueError naming the field (a micro-batch of
    0 was a ZeroDivisionError, the others were accepted)."""
    with pytest.raises(ValueError, match=field):
        config(**{field: value})
