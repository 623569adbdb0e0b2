"""Every command, handed bad input, ends with a one-paragraph message and the right status.

Status 2 when the command line itself is wrong (argparse's errors, a flag's value out of range,
flags that conflict); 1 when the command line is fine but what it names cannot be used (a
missing, empty or malformed file or folder, a run folder in the way). Never a traceback,
unless --debug asks for one. Each case fails before any training, so the table runs in seconds.
Tests may run as root, where chmod stops nothing: an unreadable input is a folder where a file
is expected, invalid UTF-8, invalid JSON, a truncated .npz or .safetensors, or an empty folder.
"""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from minigpt1.cli import main
from minigpt1.config import GPTConfig
from minigpt1.corpus.shakespeare import SDIST_NAME
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.jobs import run_folder
from minigpt1.model.gpt import GPT
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training.checkpoint import save_checkpoint
from minigpt1.training.optim import AdamW

ROOT = Path(__file__).resolve().parents[2]
TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 20


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Good and bad inputs, made once: every case only reads them."""
    root = tmp_path_factory.mktemp("inputs")
    p = SimpleNamespace(missing=root / "missing", empty=root / "empty", sample=SAMPLE_DIR)
    p.empty.mkdir()
    p.text_file = root / "a.txt"
    p.text_file.write_text(TEXT)
    p.bad_utf8 = root / "bad_utf8.txt"
    p.bad_utf8.write_bytes(b"the cat\n\xff\xfe sat\n")
    p.bad_utf8_dir = root / "bad_utf8_texts"
    p.bad_utf8_dir.mkdir()
    (p.bad_utf8_dir / "work.txt").write_bytes(b"the cat\n\xff\xfe sat\n")
    p.blank_dir = root / "blank_texts"
    p.blank_dir.mkdir()
    (p.blank_dir / "work.txt").write_text(" \n\t\n")

    tokenizer = BPETokenizer.train([TEXT], vocab_size=40, mode="gpt1", progress=False)
    p.tokenizer = root / "tokenizer"
    tokenizer.save(p.tokenizer)
    p.bad_json_tokenizer = root / "bad_json_tokenizer"
    tokenizer.save(p.bad_json_tokenizer)
    (p.bad_json_tokenizer / "vocab.json").write_text('{"the": 1,')
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=16, n_embd=8, n_layer=1, n_head=2)
    model = GPT(cfg, seed=0)

    p.model = root / "model"  # a HuggingFace-style folder
    model.save_pretrained(p.model)
    tokenizer.save(p.model)
    p.truncated_model = root / "truncated_model"
    model.save_pretrained(p.truncated_model)
    tokenizer.save(p.truncated_model)
    truncate(p.truncated_model / "model.safetensors")
    p.bad_json_model = root / "bad_json_model"
    model.save_pretrained(p.bad_json_model)
    tokenizer.save(p.bad_json_model)
    (p.bad_json_model / "config.json").write_text("{not json")

    def run_folder(name):  # a pre-training run folder with one checkpoint (no best yet)
        folder = root / name
        save_checkpoint(folder, 1, model.params, AdamW(model.params).state_dict(),
                        {"config": cfg.to_dict(), "total_steps": 2})
        tokenizer.save(folder / "tokenizer")
        (folder / "run.json").write_text(json.dumps({"kind": "pretrain"}))
        return folder

    p.run = run_folder("run")
    p.truncated_run = run_folder("truncated_run")
    truncate(next((p.truncated_run / "checkpoints").glob("step-*")) / "params.npz")

    p.sst2_bad_utf8 = root / "SST-2"
    p.sst2_bad_utf8.mkdir()
    (p.sst2_bad_utf8 / "train.tsv").write_bytes(b"sentence\tlabel\ngood \xff day\t1\n")
    (p.sst2_bad_utf8 / "dev.tsv").write_text("sentence\tlabel\na sad day\t0\n")

    p.bad_manifest = root / "bad_manifest"  # prepare: a corpus whose manifest is not JSON
    (p.bad_manifest / "shakespeare").mkdir(parents=True)
    (p.bad_manifest / "shakespeare" / "manifest.json").write_text("{")
    p.bad_tarball = root / "bad_tarball"  # prepare: a damaged download (no network needed)
    (p.bad_tarball / "downloads").mkdir(parents=True)
    (p.bad_tarball / "downloads" / SDIST_NAME).write_bytes(b"\x1f\x8b truncated")
    return p


@pytest.fixture
def p(shared, tmp_path):
    """The shared inputs, plus `out`, a fresh place for a command to (not) write to, and a
    run folder and an ablation folder of this test's own, for the cases that meet one."""
    out = tmp_path / "out"
    ablation = tmp_path / "ablation"
    ablation.mkdir()
    (ablation / "ablation.md").write_text("| earlier |\n")
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "config.json").write_text("{}")
    return SimpleNamespace(**vars(shared), out=out, ablation=ablation, exported=exported)


TINY = ["--preset", "tiny", "--n-ctx", "16", "--vocab-size", "300"]
USAGE, RUNTIME = 2, 1

# (id, argv from the paths, status, what the message must name)
CASES = [
    # the command line as a whole
    ("no-command", lambda p: [], USAGE, "required: COMMAND"),
    ("unknown-command", lambda p: ["train"], USAGE, "invalid choice: 'train'"),
    ("unknown-flag", lambda p: ["estimate", "--batches", "2"], USAGE, "unrecognized arguments"),
    # demo (always given --text-dir: without one it would download Shakespeare)
    ("demo-missing-texts", lambda p: ["demo", "--text-dir", p.missing, "--out", p.out,
                                      "--data-dir", p.out / "data"], RUNTIME,
     "text folder not found"),
    ("demo-empty-folder", lambda p: ["demo", "--text-dir", p.empty, "--out", p.out,
                                     "--data-dir", p.out / "data"], RUNTIME, "holds no .txt"),
    ("demo-invalid-utf8", lambda p: ["demo", "--text-dir", p.bad_utf8_dir, "--out", p.out,
                                     "--data-dir", p.out / "data"], RUNTIME,
     "not valid UTF-8"),
    ("demo-minutes-abc", lambda p: ["demo", "--minutes", "abc"], USAGE,
     "argument --minutes: invalid float value: 'abc'"),
    ("demo-minutes-zero", lambda p: ["demo", "--minutes", "0"], USAGE,
     "--minutes: must be a positive number"),
    ("demo-unknown-preset", lambda p: ["demo", "--preset", "huge"], USAGE,
     "unknown preset 'huge'"),
    # prepare (never reaches the network: every case fails on a file already there)
    ("prepare-unknown-corpus", lambda p: ["prepare", "wikipedia"], USAGE, "invalid choice"),
    ("prepare-invalid-manifest", lambda p: ["prepare", "shakespeare", "--data-dir",
                                            p.bad_manifest], RUNTIME,
     "manifest.json: not valid JSON"),
    ("prepare-damaged-download", lambda p: ["prepare", "shakespeare", "--data-dir",
                                            p.bad_tarball], RUNTIME, "has sha256"),
    # pretrain
    ("pretrain-missing-texts", lambda p: ["pretrain", "--text-dir", p.missing, "--out", p.out,
                                          *TINY], RUNTIME, "text folder not found"),
    ("pretrain-file-for-folder", lambda p: ["pretrain", "--text-dir", p.text_file, "--out",
                                            p.out, *TINY], RUNTIME, "text folder not found"),
    ("pretrain-empty-folder", lambda p: ["pretrain", "--text-dir", p.empty, "--out", p.out,
                                         *TINY], RUNTIME, "holds no .txt files"),
    ("pretrain-blank-text", lambda p: ["pretrain", "--text-dir", p.blank_dir, "--out", p.out,
                                       *TINY], RUNTIME, "is empty"),
    ("pretrain-invalid-utf8", lambda p: ["pretrain", "--text-dir", p.bad_utf8_dir, "--out",
                                         p.out, *TINY], RUNTIME, "not valid UTF-8"),
    ("pretrain-lr-nan", lambda p: ["pretrain", "--text-dir", p.sample, "--out", p.out, *TINY,
                                   "--lr", "nan"], USAGE,
     "argument --lr: must be a finite number >= 0, got nan"),
    ("pretrain-negative-weight-decay", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                                  p.out, *TINY, "--weight-decay", "-0.1"],
     USAGE, "argument --weight-decay: must be a finite number >= 0, got -0.1"),
    ("pretrain-missing-tokenizer", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                              p.out, "--tokenizer", p.missing, "--preset",
                                              "tiny"], RUNTIME, "no such tokenizer directory"),
    ("pretrain-invalid-json-tokenizer", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                                   p.out, "--tokenizer", p.bad_json_tokenizer,
                                                   "--preset", "tiny"], RUNTIME, "vocab.json"),
    ("pretrain-out-holds-a-run", lambda p: ["pretrain", "--text-dir", p.sample, "--out", p.run,
                                            *TINY], RUNTIME, "holds another run"),
    ("pretrain-nothing-to-resume", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                              p.empty, "--resume", *TINY], RUNTIME,
     "nothing to resume"),
    ("pretrain-max-steps-abc", lambda p: ["pretrain", "--out", p.out, "--max-steps", "abc"],
     USAGE, "argument --max-steps: invalid int value: 'abc'"),
    ("pretrain-batch-size-zero", lambda p: ["pretrain", "--text-dir", p.sample, "--out", p.out,
                                            *TINY, "--batch-size", "0"], USAGE,
     "argument --batch-size: must be a positive integer"),
    ("pretrain-batch-not-multiple", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                               p.out, *TINY, "--batch-size", "6",
                                               "--micro-batch-size", "4"], USAGE,
     "must be a multiple of micro_batch_size"),
    ("pretrain-heads-do-not-divide", lambda p: ["pretrain", "--text-dir", p.sample, "--out",
                                                p.out, "--preset", "tiny", "--n-embd", "100",
                                                "--n-head", "3"], USAGE,
     "must be divisible by n_head (3)"),
    ("pretrain-dropout-one", lambda p: ["pretrain", "--out", p.out, "--dropout", "1"], USAGE,
     "--dropout: must be in [0, 1)"),
    ("pretrain-bad-device", lambda p: ["pretrain", "--out", p.out, "--device", "tpu"], USAGE,
     "invalid choice: 'tpu'"),
    ("pretrain-no-out", lambda p: ["pretrain", "--text-dir", p.sample], USAGE,
     "the following arguments are required: --out"),
    ("pretrain-resume-and-force", lambda p: ["pretrain", "--text-dir", p.sample, "--out", p.run,
                                             "--resume", "--force"], USAGE,
     "--resume and --force cannot be used together"),
    # finetune
    ("finetune-lr-inf", lambda p: ["finetune", "--checkpoint", p.run, "--task", "genre",
                                   "--data", p.sample, "--out", p.out, "--lr", "inf"], USAGE,
     "argument --lr: must be a finite number >= 0, got inf"),
    ("finetune-missing-checkpoint", lambda p: ["finetune", "--checkpoint", p.missing, "--task",
                                               "genre", "--data", p.sample, "--out", p.out],
     RUNTIME, "neither a run folder"),
    ("finetune-empty-checkpoint", lambda p: ["finetune", "--checkpoint", p.empty, "--task",
                                             "genre", "--data", p.sample, "--out", p.out],
     RUNTIME, "neither a run folder"),
    ("finetune-truncated-safetensors", lambda p: ["finetune", "--checkpoint",
                                                  p.truncated_model, "--task", "genre", "--data",
                                                  p.sample, "--out", p.out], RUNTIME,
     "model.safetensors"),
    # --which last: the shared runs hold one checkpoint, and no best to fall back from
    ("finetune-truncated-npz", lambda p: ["finetune", "--checkpoint", p.truncated_run, "--task",
                                          "genre", "--data", p.sample, "--out", p.out,
                                          "--which", "last"], RUNTIME, "params.npz"),
    ("finetune-missing-data", lambda p: ["finetune", "--checkpoint", p.model, "--task", "sst2",
                                         "--data", p.missing, "--out", p.out], RUNTIME,
     "missing: no such folder"),
    ("finetune-invalid-utf8-data", lambda p: ["finetune", "--checkpoint", p.model, "--task",
                                              "sst2", "--data", p.sst2_bad_utf8, "--out", p.out],
     RUNTIME, "train.tsv:2"),
    ("finetune-unknown-task", lambda p: ["finetune", "--checkpoint", p.model, "--task", "nope",
                                         "--out", p.out], USAGE, "unknown task 'nope'"),
    ("finetune-file-task-without-data", lambda p: ["finetune", "--checkpoint", p.model, "--task",
                                                   "sst2", "--out", p.out], USAGE,
     "give --data FOLDER"),
    ("finetune-epochs-abc", lambda p: ["finetune", "--checkpoint", p.model, "--task", "genre",
                                       "--out", p.out, "--epochs", "abc"], USAGE,
     "argument --epochs: invalid int value: 'abc'"),
    ("finetune-lm-coef-negative", lambda p: ["finetune", "--checkpoint", p.model, "--task",
                                             "genre", "--out", p.out, "--lm-coef", "-1"], USAGE,
     "argument --lm-coef: must be a finite number >= 0, got -1"),
    ("finetune-max-train-examples-zero", lambda p: ["finetune", "--checkpoint", p.model,
                                                    "--task", "genre", "--out", p.out,
                                                    "--max-train-examples", "0"], USAGE,
     "--max-train-examples: must be a positive integer"),
    ("finetune-resume-and-force", lambda p: ["finetune", "--checkpoint", p.model, "--task",
                                             "genre", "--out", p.out, "--resume", "--force"],
     USAGE, "--resume and --force cannot be used together"),
    ("finetune-nothing-to-resume", lambda p: ["finetune", "--checkpoint", p.model, "--task",
                                              "genre", "--out", p.out, "--resume"], RUNTIME,
     "nothing to resume"),
    # ablation (given --data: without it would prepare Shakespeare)
    ("ablation-missing-texts", lambda p: ["ablation", "--checkpoint", p.run, "--data",
                                          p.missing, "--out", p.out], RUNTIME,
     "text folder not found"),
    ("ablation-empty-texts", lambda p: ["ablation", "--checkpoint", p.run, "--data",
                                        p.empty, "--out", p.out], RUNTIME, "holds no .txt"),
    ("ablation-missing-checkpoint", lambda p: ["ablation", "--checkpoint", p.missing,
                                               "--data", p.sample, "--out", p.out], RUNTIME,
     "neither a run folder"),
    ("ablation-truncated-npz", lambda p: ["ablation", "--checkpoint", p.truncated_run,
                                          "--data", p.sample, "--out", p.out, "--which",
                                          "last"], RUNTIME, "params.npz"),
    ("ablation-out-holds-an-ablation", lambda p: ["ablation", "--checkpoint", p.run, "--out",
                                                  p.ablation], RUNTIME,
     "already holds an ablation"),
    ("ablation-epochs-zero", lambda p: ["ablation", "--checkpoint", p.run, "--out", p.out,
                                        "--epochs", "0"], USAGE,
     "argument --epochs: must be a positive integer"),
    ("ablation-lr-abc", lambda p: ["ablation", "--checkpoint", p.run, "--lr", "abc"], USAGE,
     "argument --lr: invalid float value: 'abc'"),
    ("ablation-which-middle", lambda p: ["ablation", "--checkpoint", p.run, "--out", p.out,
                                         "--which", "middle"], USAGE,
     "argument --which: must be best, last or a kept snapshot such as step-0000500, got middle"),
    ("ablation-snapshot-not-kept", lambda p: ["ablation", "--checkpoint", p.run, "--data",
                                              p.sample, "--out", p.out, "--which",
                                              "step-0000007"], RUNTIME,
     "has no 'step-0000007' checkpoint"),
    ("ablation-unknown-task", lambda p: ["ablation", "--checkpoint", p.run, "--tasks", "sst2"],
     USAGE, "argument --tasks: invalid choice: 'sst2'"),
    ("ablation-seeds-zero", lambda p: ["ablation", "--checkpoint", p.run, "--seeds", "0"],
     USAGE, "argument --seeds: must be a positive integer"),
    # transfer (given --data and --which last, as the ablation)
    ("transfer-missing-checkpoint", lambda p: ["transfer", "--checkpoint", p.missing, "--data",
                                               p.sample, "--out", p.out], RUNTIME,
     "neither a run folder"),
    ("transfer-layers-above-n-layer", lambda p: ["transfer", "--checkpoint", p.run, "--data",
                                                 p.sample, "--out", p.out, "--which", "last",
                                                 "--layers", "0", "3"], RUNTIME,
     "layers to transfer must lie in -1..1 (-1: nothing, 0: the embeddings alone, 1: the "
     "whole pre-trained body), got [0, 3]"),
    ("transfer-out-holds-an-ablation", lambda p: ["transfer", "--checkpoint", p.run, "--data",
                                                  p.sample, "--out", p.ablation, "--which",
                                                  "last"], RUNTIME,
     "already holds a transfer or other files, but no settings.json"),
    ("transfer-layers-below-minus-one", lambda p: ["transfer", "--checkpoint", p.run,
                                                   "--layers", "-2"], USAGE,
     "argument --layers: must be an integer >= -1"),
    # zero-shot
    ("zero-shot-not-a-run-folder", lambda p: ["zero-shot", "--checkpoint", p.model, "--data",
                                              p.sample, "--out", p.out], RUNTIME,
     "holds no checkpoints/: zero-shot scores the checkpoints of a pre-training run folder"),
    ("zero-shot-missing-checkpoint", lambda p: ["zero-shot", "--checkpoint", p.missing,
                                                "--data", p.sample, "--out", p.out], RUNTIME,
     "holds no checkpoints/"),
    ("zero-shot-out-holds-an-ablation", lambda p: ["zero-shot", "--checkpoint", p.run, "--data",
                                                   p.sample, "--out", p.ablation], RUNTIME,
     "already holds a zero-shot or other files, but no settings.json"),
    ("zero-shot-missing-texts", lambda p: ["zero-shot", "--checkpoint", p.run, "--data",
                                           p.missing, "--out", p.out], RUNTIME,
     "text folder not found"),
    ("zero-shot-which", lambda p: ["zero-shot", "--checkpoint", p.run, "--which", "last"],
     USAGE, "unrecognized arguments: --which"),
    # generate
    ("generate-missing-checkpoint", lambda p: ["generate", "--checkpoint", p.missing], RUNTIME,
     "neither a run folder"),
    ("generate-empty-checkpoint", lambda p: ["generate", "--checkpoint", p.empty], RUNTIME,
     "neither a run folder"),
    ("generate-file-for-folder", lambda p: ["generate", "--checkpoint", p.text_file], RUNTIME,
     "neither a run folder"),
    ("generate-invalid-json-config", lambda p: ["generate", "--checkpoint", p.bad_json_model],
     RUNTIME, "config.json: not valid JSON"),
    ("generate-truncated-safetensors", lambda p: ["generate", "--checkpoint",
                                                  p.truncated_model], RUNTIME,
     "model.safetensors"),
    ("generate-truncated-npz", lambda p: ["generate", "--checkpoint", p.truncated_run,
                                          "--which", "last"], RUNTIME, "params.npz"),
    ("generate-temperature-negative", lambda p: ["generate", "--checkpoint", p.run,
                                                 "--temperature", "-1"], USAGE,
     "--temperature: must be 0 (greedy) or a number from 0.001 to 1000, got -1"),
    ("generate-max-new-tokens-abc", lambda p: ["generate", "--checkpoint", p.run,
                                               "--max-new-tokens", "abc"], USAGE,
     "invalid int value: 'abc'"),
    ("generate-top-k-zero", lambda p: ["generate", "--checkpoint", p.run, "--top-k", "0"], USAGE,
     "--top-k: must be a positive integer"),
    ("generate-top-p-above-one", lambda p: ["generate", "--checkpoint", p.run, "--top-p", "2"],
     USAGE, "--top-p: must be in (0, 1]"),
    ("generate-empty-prompt", lambda p: ["generate", "--checkpoint", p.run, "--prompt", ""],
     USAGE, "argument --prompt: must be non-empty text"),
    # export
    ("export-missing-checkpoint", lambda p: ["export", "--checkpoint", p.missing, "--out",
                                             p.out], RUNTIME, "neither a run folder"),
    ("export-empty-checkpoint", lambda p: ["export", "--checkpoint", p.empty, "--out", p.out],
     RUNTIME, "neither a run folder"),
    ("export-truncated-npz", lambda p: ["export", "--checkpoint", p.truncated_run, "--out",
                                        p.out, "--which", "last"], RUNTIME, "params.npz"),
    ("export-out-holds-a-model", lambda p: ["export", "--checkpoint", p.run, "--out",
                                            p.exported], RUNTIME, "already holds a model"),
    ("export-which-middle", lambda p: ["export", "--checkpoint", p.run, "--out", p.out,
                                       "--which", "middle"], USAGE,
     "argument --which: must be best, last or a kept snapshot such as step-0000500, got middle"),
    ("export-no-out", lambda p: ["export", "--checkpoint", p.run], USAGE,
     "the following arguments are required: --out"),
    # evaluate
    ("evaluate-missing-checkpoint", lambda p: ["evaluate", "--checkpoint", p.missing,
                                               "--text-dir", p.sample], RUNTIME,
     "neither a run folder"),
    ("evaluate-snapshot-not-kept", lambda p: ["evaluate", "--checkpoint", p.run, "--text-dir",
                                              p.sample, "--which", "step-0000001"], RUNTIME,
     "has no 'step-0000001' checkpoint"),
    # estimate (reads no file)
    ("estimate-batch-size-zero", lambda p: ["estimate", "--batch-size", "0"], USAGE,
     "--batch-size: must be a positive integer up to 1,000,000,000, got 0"),
    ("estimate-batch-size-abc", lambda p: ["estimate", "--batch-size", "abc"], USAGE,
     "invalid int value: 'abc'"),
    ("estimate-n-ctx-negative", lambda p: ["estimate", "--n-ctx", "-5"], USAGE,
     "--n-ctx: must be an integer >= 2"),
    ("estimate-unknown-preset", lambda p: ["estimate", "--preset", "huge"], USAGE,
     "unknown preset 'huge'"),
    # bpe train
    ("bpe-train-missing-input", lambda p: ["bpe", "train", "--input", p.missing,
                                           "--vocab-size", "60", "--out", p.out], RUNTIME,
     "missing: No such file or directory"),
    ("bpe-train-invalid-utf8", lambda p: ["bpe", "train", "--input", p.bad_utf8, "--vocab-size",
                                          "60", "--out", p.out], RUNTIME,
     "not valid UTF-8 at byte offset 8"),
    ("bpe-train-empty-folder", lambda p: ["bpe", "train", "--input", p.empty, "--vocab-size",
                                          "60", "--out", p.out], RUNTIME,
     "holds no *.txt files"),
    ("bpe-train-vocab-too-small", lambda p: ["bpe", "train", "--input", p.text_file,
                                             "--vocab-size", "3", "--out", p.out], RUNTIME,
     "smaller than the base vocabulary"),
    ("bpe-train-out-is-a-file", lambda p: ["bpe", "train", "--input", p.text_file,
                                           "--vocab-size", "30", "--out", p.text_file], RUNTIME,
     "a.txt: File exists"),
    ("bpe-train-vocab-abc", lambda p: ["bpe", "train", "--input", p.text_file, "--vocab-size",
                                       "abc", "--out", p.out], USAGE,
     "argument --vocab-size: invalid int value: 'abc'"),
    ("bpe-train-vocab-zero", lambda p: ["bpe", "train", "--input", p.text_file, "--vocab-size",
                                        "0", "--out", p.out], USAGE,
     "--vocab-size: must be a positive integer"),
    ("bpe-train-no-input", lambda p: ["bpe", "train", "--vocab-size", "60", "--out", p.out],
     USAGE, "the following arguments are required: --input"),
    # bpe encode / decode / show
    ("bpe-encode-missing-tokenizer", lambda p: ["bpe", "encode", "--tokenizer", p.missing, "x"],
     RUNTIME, "no such tokenizer directory"),
    ("bpe-encode-empty-folder", lambda p: ["bpe", "encode", "--tokenizer", p.empty, "x"],
     RUNTIME, "missing vocab.json"),
    ("bpe-encode-file-for-folder", lambda p: ["bpe", "encode", "--tokenizer", p.text_file, "x"],
     RUNTIME, "a.txt: no such tokenizer directory"),
    ("bpe-encode-invalid-json", lambda p: ["bpe", "encode", "--tokenizer",
                                           p.bad_json_tokenizer, "x"], RUNTIME, "vocab.json"),
    ("bpe-encode-bad-mode", lambda p: ["bpe", "encode", "--tokenizer", p.tokenizer,
                                       "--bpe-mode", "words", "x"], USAGE,
     "invalid choice: 'words'"),
    ("bpe-decode-missing-tokenizer", lambda p: ["bpe", "decode", "--tokenizer", p.missing, "1"],
     RUNTIME, "no such tokenizer directory"),
    ("bpe-decode-id-abc", lambda p: ["bpe", "decode", "--tokenizer", p.tokenizer, "1", "abc"],
     USAGE, "invalid int value: 'abc'"),
    ("bpe-decode-id-outside", lambda p: ["bpe", "decode", "--tokenizer", p.tokenizer, "99999"],
     RUNTIME, "outside the vocabulary"),
    ("bpe-show-invalid-json", lambda p: ["bpe", "show", "--tokenizer", p.bad_json_tokenizer,
                                         "cat"], RUNTIME, "vocab.json"),
    ("bpe-show-no-word", lambda p: ["bpe", "show", "--tokenizer", p.tokenizer], USAGE,
     "the following arguments are required: word"),
    ("bpe-no-subcommand", lambda p: ["bpe"], USAGE, "required: BPE_COMMAND"),
]


# pretrain creates its (empty) run folder before it reads --tokenizer: a library order, noted
CREATES_OUT_FIRST = {"pretrain-missing-tokenizer", "pretrain-invalid-json-tokenizer"}


def one_paragraph(err):
    """stderr's message, checked to be one paragraph and no traceback."""
    assert "Traceback" not in err, err
    message = err.strip()
    assert message and "\n\n" not in message, err
    return message


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gives_status_and_one_paragraph(p, capsys, case):
    name, argv, status, names = case
    code = main([str(arg) for arg in argv(p)])
    message = one_paragraph(capsys.readouterr().err)
    assert code == status, message
    assert names in message, message
    if status == USAGE and message.startswith("usage:"):  # argparse: the usage, then the error
        assert ": error: " in message.splitlines()[-1], message
    else:  # ours: one line, the problem and (for a usage error) where to read about the fix
        assert message.startswith("error: ") and "\n" not in message, message
        assert status == RUNTIME or "--help" in message
    if name not in CREATES_OUT_FIRST:
        assert not p.out.exists()  # a refused command writes nothing


def test_the_table_covers_every_command():
    commands = {case[0].split("-")[0] for case in CASES}
    assert {"demo", "prepare", "pretrain", "finetune", "ablation", "transfer", "generate",
            "export", "evaluate", "estimate", "bpe"} <= commands
    assert any(case[0].startswith("zero-shot-") for case in CASES)
    for bpe_command in ("train", "encode", "decode", "show"):
        assert any(case[0].startswith(f"bpe-{bpe_command}-") for case in CASES)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_lets_the_exception_through(shared, where):
    argv = ["generate", "--checkpoint", str(shared.missing)]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        main(argv)


def test_stdin_that_is_not_ids(shared, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("1 two 3"))
    code = main(["bpe", "decode", "--tokenizer", str(shared.tokenizer)])
    message = one_paragraph(capsys.readouterr().err)
    assert code == RUNTIME and "token ids separated by spaces" in message


def test_an_unexpected_exception_is_one_paragraph_that_points_to_debug(shared, capsys,
                                                                      monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("config")

    monkeypatch.setattr(run_folder, "load_model", broken)
    code = main(["generate", "--checkpoint", str(shared.run)])
    message = one_paragraph(capsys.readouterr().err)
    assert code == RUNTIME and "unexpected KeyError" in message and "--debug" in message


def test_interrupt_keeps_status_130(shared, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("stopped at step 3; continue with --resume")

    monkeypatch.setattr(run_folder, "load_model", interrupted)
    assert main(["generate", "--checkpoint", str(shared.run)]) == 130
    assert capsys.readouterr().err == "interrupted: stopped at step 3; continue with --resume\n"


def test_help_returns_0(capsys):
    assert main(["estimate", "--help"]) == 0
    assert "--debug" in capsys.readouterr().out


def python_m(*args):
    return subprocess.run([sys.executable, "-m", "minigpt1", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_reader_that_goes_away_ends_the_command_quietly(shared):
    """`python -m minigpt1 bpe encode < big.txt | head -c 10`: no error, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "minigpt1", "bpe", "encode", "--tokenizer",
                             str(shared.tokenizer)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"the king spoke " * 100_000)  # far more ids than a pipe buffers
    proc.stdin.close()
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()  # the reader goes away
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as a Unix tool's shell status
    assert proc.stderr.read() == b""


def test_the_terminal_sees_no_traceback(shared):
    runtime = python_m("generate", "--checkpoint", shared.truncated_model)
    assert runtime.returncode == RUNTIME and "Traceback" not in runtime.stderr
    assert runtime.stderr.startswith("error: ") and "model.safetensors" in runtime.stderr
    assert runtime.stderr.count("\n") == 1 and runtime.stdout == ""
    usage = python_m("pretrain", "--out", shared.run, "--resume", "--force")
    assert usage.returncode == USAGE and "Traceback" not in usage.stderr
    assert "--resume and --force cannot be used together" in usage.stderr
    argparse_error = python_m("estimate", "--batch-size", "0")
    assert argparse_error.returncode == USAGE and "Traceback" not in argparse_error.stderr
    assert ("--batch-size: must be a positive integer up to 1,000,000,000, got 0"
            in argparse_error.stderr)


def test_the_terminal_sees_the_traceback_with_debug(shared):
    result = python_m("--debug", "generate", "--checkpoint", shared.truncated_model)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "FormatError" in result.stderr and "model.safetensors" in result.stderr
