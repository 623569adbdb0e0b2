"""The command line's pre-training, generation and export paths, and its bad-input answers:
a clear message, a non-zero exit, nothing overwritten. Then its one vocabulary: every --help
shows each default and examples that parse, an old spelling still works unseen, with a note,
the usage names the command as it was called, and docs/cli.md lists every flag."""

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt1.cli import build_parser, main
from minigpt1.corpus.text_folders import SAMPLE_DIR

FAST = ["--preset", "tiny", "--n-ctx", "32", "--vocab-size", "300", "--batch-size", "4",
        "--micro-batch-size", "4", "--warmup-steps", "2", "--eval-every", "4",
        "--eval-windows", "2"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """A copy of the sample corpus: pretrain caches token ids beside the texts it reads."""
    copy = tmp_path_factory.mktemp("corpus") / "sample"
    shutil.copytree(SAMPLE_DIR.parent, copy)
    return copy / "texts"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, texts):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["pretrain", "--text-dir", str(texts), "--out", str(out),
                 "--max-steps", "8", *FAST]) == 0
    return out


def test_pretrain_generate_export(run_dir, tmp_path, capsys):
    assert (run_dir / "metrics.jsonl").exists() and (run_dir / "tokenizer" / "vocab.json").exists()
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run_dir), "--prompt", "KING.\n",
                 "--max-new-tokens", "10", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("KING.\n") and len(text) > len("KING.\n")
    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(run_dir), "--out", str(out)]) == 0
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        assert (out / name).exists(), name
    # the exported folder generates the same text as the run's best checkpoint
    capsys.readouterr()
    args = ["--prompt", "KING.\n", "--max-new-tokens", "10", "--temperature", "0"]
    main(["generate", "--checkpoint", str(out), *args])
    from_export = capsys.readouterr().out
    main(["generate", "--checkpoint", str(run_dir), "--which", "best", *args])
    assert capsys.readouterr().out == from_export
    assert main(["export", "--checkpoint", str(run_dir), "--out", str(out)]) == 1
    assert "already holds a model" in capsys.readouterr().err


def test_evaluate_scores_every_held_out_window_as_pretrain_does(texts, tmp_path, capsys):
    """With eval windows enough for the whole held-out split, pretrain's final validation loss
    is the one evaluate reports for that checkpoint; bits = nats * tokens / chars / ln 2."""
    out = tmp_path / "run"
    fast = [*FAST[: FAST.index("--eval-windows")], "--eval-windows", "100000"]
    assert main(["pretrain", "--text-dir", str(texts), "--out", str(out), "--max-steps", "4",
                 "--bpe-mode", "gpt1", *fast]) == 0
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--text-dir", str(texts)]) == 0
    report = capsys.readouterr().out
    loss, bits = map(float, re.search(r"loss ([\d.]+) nats per token, ([\d.]+) bits per "
                                      r"character", report).groups())
    assert loss == pytest.approx(last["val_loss"], abs=1e-4)
    assert bits == pytest.approx(last["val_bpc"], abs=1e-4)  # gpt1 mode: per character


def error_of(args, capsys, status=1):
    """stderr of a refused command: status 1 for what it names, 2 for the command line."""
    assert main(args) == status
    return capsys.readouterr().err


def test_bad_inputs(run_dir, texts, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .txt" in error_of(["pretrain", "--text-dir", str(empty), "--out",
                                  str(tmp_path / "r1"), *FAST], capsys)
    (empty / "a.txt").write_text("  \n")
    assert "is empty" in error_of(["pretrain", "--text-dir", str(empty), "--out",
                                   str(tmp_path / "r1"), *FAST], capsys)
    missing = error_of(["pretrain", "--text-dir", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "r2"), *FAST], capsys)
    assert "nope" in missing
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing written
    assert "nothing to resume" in error_of(["pretrain", "--text-dir", str(texts), "--out",
                                            str(tmp_path / "r3"), "--resume", *FAST], capsys)
    before = (run_dir / "metrics.jsonl").read_bytes()
    assert "holds another run" in error_of(["pretrain", "--text-dir", str(texts), "--out",
                                            str(run_dir), *FAST], capsys)
    assert (run_dir / "metrics.jsonl").read_bytes() == before  # nothing overwritten
    odd_heads = ["pretrain", "--text-dir", str(texts), "--out", str(tmp_path / "r4"),
                 *FAST, "--n-embd", "100", "--n-head", "3"]
    assert "change --n-embd, --n-head (or --config)" in error_of(odd_heads, capsys, status=2)
    assert not (tmp_path / "r4").exists()
    assert "neither a run folder" in error_of(["generate", "--checkpoint", str(empty)], capsys)


def test_resume_with_another_architecture_is_refused(run_dir, texts, tmp_path, capsys):
    import json

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    run = json.loads((copy / "run.json").read_text())
    run["config"]["n_layer"] = 2  # the run now claims another architecture
    (copy / "run.json").write_text(json.dumps(run))
    err = error_of(["pretrain", "--text-dir", str(texts), "--out", str(copy), "--resume",
                    *FAST], capsys)
    assert "differs from run.json" in err


def test_long_prompt_is_cut_with_a_warning(run_dir):
    result = subprocess.run(
        [sys.executable, "-m", "minigpt1", "generate", "--checkpoint", str(run_dir),
         "--prompt", "word " * 200, "--max-new-tokens", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cut to its last 32" in result.stderr


def test_a_finetuning_run_recorded_with_last_resumes_without_which(run_dir, tmp_path, capsys):
    """--which now defaults to best; a run that recorded "last" still resumes as recorded,
    and only a typed --which that differs from the record is refused."""
    out = tmp_path / "genre"
    small = ["--max-train-examples", "16", "--batch-size", "8", "--micro-batch-size", "8"]
    assert main(["finetune", "--checkpoint", str(run_dir), "--task", "genre", "--out", str(out),
                 "--which", "last", "--epochs", "1", *small]) == 0
    assert json.loads((out / "run.json").read_text())["which"] == "last"
    capsys.readouterr()
    assert main(["finetune", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4  # 16 examples, 8 a step, 2 epochs: the run went on as recorded
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"done: 4 updates; validation accuracy {metrics['validation']['accuracy']:.4f}; "
        f"test accuracy {metrics['test']['accuracy']:.4f}; run folder {out}")
    typed = ["finetune", "--out", str(out), "--resume", "--epochs", "3", "--which", "best"]
    assert "--which best (the run's: last)" in error_of(typed, capsys, status=2)
    typed = ["finetune", "--out", str(out), "--resume", "--n-validation", "100"]
    assert "--n-validation 100 (the run's: 374)" in error_of(typed, capsys, status=2)


def test_finetune_passes_n_validation_and_prints_every_metric(monkeypatch, tmp_path, capsys):
    """--n-validation reaches the plan (374, GPT-1's, without it); the last line holds every
    metric of every split, the task's first (MRPC: F1, then accuracy)."""
    from minigpt1.jobs import finetune as job

    plans = []

    def finished(plan, world):
        plans.append(plan)
        return {"steps": 7, "metrics": {"validation": {"f1": 0.81234, "accuracy": 0.74},
                                        "test": {"f1": 0.80006, "accuracy": 0.729}}}

    monkeypatch.setattr(job, "run_finetuning", finished)
    for task, more in (("rocstories", []), ("rocstories", ["--n-validation", "100"]),
                       ("mrpc", [])):
        assert main(["finetune", "--checkpoint", "run", "--task", task, "--data", "files",
                     "--out", str(tmp_path / task), *more]) == 0
    assert [plan.n_validation for plan in plans] == [374, 100, 374]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "done: 7 updates; validation f1 0.8123, accuracy 0.7400; test f1 0.8001, accuracy "
        f"0.7290; run folder {tmp_path / 'mrpc'}")


# --- one vocabulary: --help, examples, old spellings, the program's name, docs/cli.md ---


def _commands(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(build_parser()))  # (command words): its parser; () is the top one
PATHS = list(COMMANDS)
IDS = [" ".join(path) or "minigpt1" for path in PATHS]


def help_entries(text):
    """{option string: its entry in an --help text, whitespace collapsed}."""
    entries, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):  # "  --lr LR   peak learning rate ..." or "  -h, --help ..."
            current = [line]
            for name in re.findall(r"--?[\w-]+", line.strip().partition("  ")[0]):
                entries[name] = current
        elif line.startswith("   ") and current is not None:  # the help, wrapped
            current.append(line)
        else:
            current = None
    return {name: " ".join(" ".join(lines).split()) for name, lines in entries.items()}


def shown(default):
    return repr(default) if isinstance(default, str) and not default.isprintable() else str(default)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_help_shows_every_default_once(path, capsys):
    assert main([*path, "--help"]) == 0
    entries = help_entries(capsys.readouterr().out)
    parser = COMMANDS[path]
    fresh = parser.get_default("fresh_defaults") or {}  # a flag --resume compares: SUPPRESS
    checked = 0
    for action in parser._actions:
        default = fresh.get(action.dest, action.default)
        if (not action.option_strings or action.nargs == 0 or action.help == argparse.SUPPRESS
                or default is None or default == argparse.SUPPRESS):
            continue
        entry = entries[action.option_strings[0]]
        if not isinstance(default, list):
            assert f"(default: {shown(default)})" in entry, entry
        checked += 1
    assert all(entry.count("(default") <= 1 for entry in entries.values()), entries
    assert checked >= {"pretrain": 15, "generate": 5, "export": 1}.get(" ".join(path), 0)


def example_lines(parser):
    text = parser.format_help()
    assert "\nexamples:\n" in text
    return [line.strip() for line in text.split("\nexamples:\n")[1].splitlines()
            if line.startswith(f"  {parser.prog}")]


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_help_ends_with_examples_that_parse(path, capsys):
    lines = example_lines(COMMANDS[path])
    assert lines
    words = len(shlex.split(build_parser().prog))  # "python -m minigpt1": 3 words
    for line in lines:
        try:
            build_parser().parse_args(shlex.split(line)[words:])
        except SystemExit as done:  # `pretrain --help` is an example of the top command
            assert done.code == 0, line
        assert capsys.readouterr().err == "", line  # no note: examples use today's spellings


OLD_SPELLINGS = [  # (command, the rest of a valid line, old flag, new flag, a value)
    (("estimate",), ["--no-measure"], "--batch", "--batch-size", "4"),
    (("estimate",), ["--no-measure"], "--seq", "--n-ctx", "64"),
    (("ablation",), ["--checkpoint", "run"], "--text-dir", "--data", "texts"),
    (("bpe", "train"), ["--input", "texts", "--vocab-size", "300", "--out", "tok"],
     "--mode", "--bpe-mode", "bytes"),
    (("bpe", "encode"), ["--tokenizer", "tok", "text"], "--mode", "--bpe-mode", "gpt1"),
    (("bpe", "decode"), ["--tokenizer", "tok", "1"], "--mode", "--bpe-mode", "gpt1"),
    (("bpe", "show"), ["--tokenizer", "tok", "word"], "--mode", "--bpe-mode", "gpt1"),
]


@pytest.mark.parametrize("path, rest, old, new, value", OLD_SPELLINGS,
                         ids=[f"{' '.join(case[0])} {case[2]}" for case in OLD_SPELLINGS])
def test_an_old_spelling_still_works_unseen_with_a_note(path, rest, old, new, value, capsys):
    with_new = build_parser().parse_args([*path, *rest, new, value])
    assert capsys.readouterr().err == ""
    with_old = build_parser().parse_args([*path, *rest, old, value])
    assert vars(with_old) == vars(with_new)
    assert capsys.readouterr().err == (f"note: {old} is now {new}; the old spelling goes in "
                                       "the next release\n")
    text = COMMANDS[path].format_help()
    assert new in text and not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", text)


@pytest.mark.parametrize("argv0, prog", [
    ("/home/me/.venv/bin/minigpt1", "minigpt1"),  # the console script
    ("/home/me/minigpt1/minigpt1/__main__.py", "python -m minigpt1"),
])
def test_usage_and_examples_name_the_command_as_it_was_called(monkeypatch, capsys, argv0,
                                                               prog):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert main(["pretrain", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {prog} pretrain [-h]")
    assert f"\n  {prog} pretrain --out runs/tiny --preset tiny --max-steps 200\n" in text
    odd_heads = ["estimate", "--n-embd", "100", "--n-head", "3", "--no-measure"]
    assert f"(see {prog} estimate --help)" in error_of(odd_heads, capsys, status=2)


READERS = {  # each command that reads a checkpoint of a run folder, in a valid line
    "generate": ["--checkpoint", "run"], "export": ["--checkpoint", "run", "--out", "hf"],
    "evaluate": ["--checkpoint", "run"], "ablation": ["--checkpoint", "run"],
    "transfer": ["--checkpoint", "run"],
    "finetune": ["--checkpoint", "run", "--task", "genre", "--out", "ft"],
}


def test_every_command_that_reads_a_run_reads_the_same_checkpoint_by_default():
    for command, rest in READERS.items():
        args = build_parser().parse_args([command, *rest])
        which = args.fresh_defaults["which"] if command == "finetune" else args.which
        assert which == "best", command


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("which", ["best", "last", "step-0000500", "step-0000000"])
def test_which_names_best_last_or_a_kept_snapshot(command, which):
    assert build_parser().parse_args([command, *READERS[command], "--which", which]).which == which


CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


@pytest.mark.parametrize("path", PATHS[1:], ids=IDS[1:])
def test_docs_cli_md_has_a_section_for_each_command_with_its_flags(path):
    sections = re.split(r"^## ", CLI_DOC.read_text(encoding="utf-8"), flags=re.M)
    heading = f"`minigpt1 {' '.join(path)}`"
    section = next(text for text in sections if text.startswith(heading))
    for action in COMMANDS[path]._actions:
        shared = action.option_strings[:1] in (["-h"], ["--debug"], [])  # said once, on top
        if action.help != argparse.SUPPRESS and not shared:
            assert f"`{action.option_strings[0]}" in section, (heading, action.option_strings)
    assert f"    minigpt1 {' '.join(path)}" in section  # an example


def test_the_experiment_commands_build_their_plans_from_the_flags(monkeypatch):
    """Every flag reaches its plan's field; --tasks in the jobs' order, each once (the same
    tasks make the same experiment, whatever order they are typed in)."""
    from minigpt1.jobs import ablation, transfer, zero_shot

    plans = []
    for job, name in ((ablation, "run_ablation"), (transfer, "run_transfer"),
                      (zero_shot, "run_zero_shot")):
        monkeypatch.setattr(job, name, plans.append)
    shared = ["--checkpoint", "run", "--data", "texts", "--out", "x", "--force",
              "--tasks", "next-line", "genre", "genre"]
    grid = [*shared, "--seeds", "2", "--which", "step-0000500", "--epochs", "1", "--seed", "4"]
    assert main(["ablation", *grid]) == 0
    assert main(["transfer", *grid, "--layers", "2", "0", "--lm-coef", "0"]) == 0
    assert main(["zero-shot", *shared, "--split", "validation", "--max-examples", "5",
                 "--no-step-zero", "--seed", "4"]) == 0
    fields = dict(checkpoint="run", out_dir="x", text_dir="texts", tasks=("genre", "next-line"),
                  force=True, device="cpu")
    grid_fields = dict(fields, seeds=2, which="step-0000500")
    assert plans == [
        ablation.AblationPlan(**grid_fields, finetune=ablation.ablation_config(epochs=1, seed=4)),
        transfer.TransferPlan(**grid_fields, layers=(2, 0), finetune=ablation.ablation_config(
            epochs=1, seed=4, lm_coef=0.0)),
        zero_shot.ZeroShotPlan(**fields, split="validation", max_examples=5, step_zero=False,
                               seed=4),
    ]
