"""Figure 2 left: what transferring N pre-trained blocks means for the weights a run starts
from, and the experiment end to end (runs, table, figure)."""

import json

import numpy as np
import pytest

from minigpt1 import GPT
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.finetuning.shakespeare_tasks import SHAKESPEARE_TASKS
from minigpt1.jobs import ablation
from minigpt1.jobs.finetune import new_task_model
from minigpt1.jobs.transfer import TransferPlan, run_transfer, transfer_variants
from minigpt1.training.task_objective import FinetuneConfig
from tests.conftest import sample_model_folder

SEED = 7


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 2-block GPT (weights from seed 0) and the sample corpus's tokenizer, as a folder."""
    return sample_model_folder(tmp_path_factory.mktemp("model"), 300, n_embd=16, n_layer=2,
                               n_head=2)


def start_of_run(folder, n_blocks):
    """The GPT a fine-tuning run with transfer_layers = n_blocks starts from, and the one that
    transferring everything gives (the checkpoint's, with the special tokens' rows)."""
    from minigpt1.jobs.run_folder import load_model

    models = []
    for fcfg in (FinetuneConfig(transfer_layers=n_blocks, seed=SEED), FinetuneConfig(seed=SEED)):
        gpt, tokenizer = load_model(folder)
        models.append(new_task_model(gpt, tokenizer, SHAKESPEARE_TASKS["genre"], fcfg).gpt)
    return models


def test_all_blocks_are_the_checkpoints_body(pretrained):
    from minigpt1.jobs.run_folder import load_model

    gpt, _ = start_of_run(pretrained, 2)
    checkpoint = load_model(pretrained)[0].params
    assert set(gpt.params) == set(checkpoint)
    for name, value in checkpoint.items():
        if name == "tokens_embed.weight":  # the special tokens' rows follow the checkpoint's
            assert gpt.params[name].shape == (value.shape[0] + 3, value.shape[1])
            np.testing.assert_array_equal(gpt.params[name][: len(value)], value)
        else:
            np.testing.assert_array_equal(gpt.params[name], value, err_msg=name)


def test_zero_blocks_keep_the_embeddings_and_start_every_block_afresh(pretrained):
    gpt, everything = start_of_run(pretrained, 0)
    fresh = GPT(gpt.cfg, seed=SEED).params  # a freshly initialised body, the run's seed
    for name, value in gpt.params.items():
        if name.startswith("h."):  # every block: the fresh model's, none pre-trained
            np.testing.assert_array_equal(value, fresh[name], err_msg=name)
        else:  # the embeddings (and the special tokens' rows): the checkpoint's
            np.testing.assert_array_equal(value, everything.params[name], err_msg=name)
    # the checkpoint's blocks are another draw (seed 0): a test that can tell them apart
    assert not np.array_equal(fresh["h.0.attn.c_attn.weight"],
                              everything.params["h.0.attn.c_attn.weight"])


def test_one_block_keeps_the_first_and_starts_the_second_afresh(pretrained):
    gpt, everything = start_of_run(pretrained, 1)
    fresh = GPT(gpt.cfg, seed=SEED).params
    for name, value in gpt.params.items():
        expected = fresh if name.startswith("h.1.") else everything.params
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_layers_out_of_range_are_refused():
    assert list(transfer_variants([2, 0, 1], 2)) == ["0 blocks", "1 blocks", "2 blocks"]
    with pytest.raises(ValueError, match=r"must lie in -1..2 .* got \[3\]"):
        transfer_variants([3], 2)


def test_transfer_experiment_end_to_end(pretrained, tmp_path, monkeypatch):
    fcfg = ablation.ablation_config(epochs=1, batch_size=16, max_train_examples=32)
    plan = TransferPlan(pretrained, tmp_path / "transfer", SAMPLE_DIR, fcfg, tasks=("genre",),
                        seeds=2)
    found = run_transfer(plan, progress=False)
    assert list(found) == ["0 blocks", "1 blocks", "2 blocks"]
    saved = json.loads((tmp_path / "transfer" / "transfer.json").read_text())
    assert saved["layers"] == [0, 1, 2] and saved["n_layer"] == 2 and saved["seeds"] == [0, 1]
    for n in (0, 1, 2):
        for seed in (0, 1):
            folder = ablation.run_folder(plan.out_dir, f"{n} blocks", "genre", seed)
            run = json.loads((folder / "run.json").read_text())
            assert (run["finetune"]["transfer_layers"], run["finetune"]["seed"]) == (n, seed)
            result = json.loads((folder / "results.json").read_text())["test"]
            assert saved["per_seed"][f"{n} blocks"]["genre"][str(seed)] == result
    table = (tmp_path / "transfer" / "transfer.md").read_text()
    assert "| blocks transferred | genre | average |" in table
    assert f"| 0 (embeddings only) | {ablation.cell(found['0 blocks']['genre'])} |" in table
    assert "| 2 (all) |" in table and "\n| chance | 33.3 | 33.3 |\n" in table
    assert "| 2 blocks − 0 blocks |" in table and "| 1 blocks − 0 blocks |" in table
    assert (tmp_path / "transfer" / "transfer.png").stat().st_size > 10_000
    # a rerun continues: nothing is left to run
    monkeypatch.setattr(ablation, "run_finetuning", lambda *a, **k: pytest.fail("ran again"))
    assert run_transfer(plan, progress=False) == found
