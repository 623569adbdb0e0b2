"""run.json, the description a resumed run continues from: any damage to it ends in FormatError
naming the file, whether it is a pre-training or a fine-tuning run, and `pretrain --resume`
turns that into one line on stderr and exit status 1."""

import json
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt1.cli import main
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.finetuning.transformations import TaskSpec
from minigpt1.jobs.finetune import read_finetune_run
from minigpt1.jobs.pretrain import PretrainPlan, read_run, run_pretraining
from minigpt1.training.lm_objective import TrainConfig
from minigpt1.training.task_objective import FinetuneConfig
from tests.robustness.fuzz import (
    CFG,
    FUZZ,
    broken_bytes,
    copy_of,
    json_values,
    loads_or_fails_cleanly,
)

PRETRAIN_RUN = {"format_version": 1, "kind": "pretrain", "preset": "tiny",
                "config": CFG.to_dict(), "train": asdict(TrainConfig()), "text_dir": "texts"}
FINETUNE_RUN = {"format_version": 1, "kind": "finetune", "config": CFG.to_dict(),
                "finetune": asdict(FinetuneConfig()), "checkpoint": "runs/pretrain",
                "data": None, "task": asdict(TaskSpec("mood", "classification", ("a", "b"),
                                                      "accuracy"))}
READERS = {"pretrain": (PRETRAIN_RUN, read_run), "finetune": (FINETUNE_RUN, read_finetune_run)}


@pytest.fixture(scope="module")
def run_folders(tmp_path_factory):
    folders = {}
    for kind, (run, _) in READERS.items():
        folders[kind] = tmp_path_factory.mktemp(kind) / "run"
        folders[kind].mkdir()
        (folders[kind] / "run.json").write_text(json.dumps(run))
    return folders


@pytest.mark.parametrize("kind", READERS)
def test_the_good_descriptions_read(run_folders, kind):
    assert READERS[kind][1](run_folders[kind])[1] == CFG


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(READERS)))
def test_damaged_run_json(run_folders, data, kind):
    good, read = READERS[kind]
    with copy_of(run_folders[kind]) as folder:
        path = folder / "run.json"
        how = data.draw(st.sampled_from(["bytes", "anything", "sections"]))
        if how == "bytes":
            path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        elif how == "anything":
            path.write_text(json.dumps(data.draw(json_values)))
        else:  # some sections deleted or replaced by any JSON value, or one field of a section
            run = json.loads(json.dumps(good))
            keys = st.lists(st.sampled_from(sorted(good)), min_size=1, max_size=3, unique=True)
            for key in data.draw(keys):
                if data.draw(st.booleans()):
                    run.pop(key)
                elif isinstance(run[key], dict) and data.draw(st.booleans()):
                    field = data.draw(st.sampled_from(sorted(run[key]) + ["unknown"]))
                    run[key][field] = data.draw(json_values)
                else:
                    run[key] = data.draw(json_values)
            path.write_text(json.dumps(run))
        loads_or_fails_cleanly(lambda: read(folder), folder)


def test_pretrain_resume_with_a_broken_run_json(tmp_path, capsys):
    out = tmp_path / "run"
    tcfg = TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2, eval_every=2,
                       eval_windows=2, log_every=1)
    run_pretraining(PretrainPlan(SAMPLE_DIR, out, "tiny", tcfg, n_ctx=16, vocab_size=280,
                                 cache_dir=tmp_path / "cache"), progress=False)
    run = json.loads((out / "run.json").read_text())
    run["train"]["batch_size"] = "eight"
    (out / "run.json").write_text(json.dumps(run))
    code = main(["pretrain", "--out", str(out), "--text-dir", str(SAMPLE_DIR), "--resume",
                 "--preset", "tiny"])
    err = capsys.readouterr().err
    assert code == 1 and "run.json" in err and "'train'" in err and "Traceback" not in err
