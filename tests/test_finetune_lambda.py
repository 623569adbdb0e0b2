"""L3 = L2 + lambda * L1 in the fine-tuning loop itself, at lambda 0 and at a lambda that is not
the default 0.5: the logged loss is L2 + lambda L1 (exactly L2 at 0, with no L1 logged), and the
update equals the one made by hand from `finetune_loss_and_grads` with that lambda. The model-
level tests check the gradients of L3; these check that the loop passes the configured lambda."""

import json

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.backend import device_rng
from minigpt1.fast.batch_threads import single_threaded_blas
from minigpt1.finetuning.transformations import make_batch
from minigpt1.jobs.finetune import encode_splits, new_task_model
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training.optim import AdamW, clip_grad_norm
from minigpt1.training.task_objective import (
    FinetuneConfig,
    batch_indices,
    finetune,
    finetune_step,
)
from minigpt1.training.update import step_seed
from tests.test_finetune import FILLER, NEGATIVE, POSITIVE, SPEC, mood_task

LAMBDAS = [0.0, 0.25]
STEP, LR = 3, 1e-3


def task_model_and_examples(fcfg):
    """A fresh 2-layer task model (the same weights for the same seed) and encoded examples."""
    text = " ".join(POSITIVE + NEGATIVE + FILLER)
    tokenizer = BPETokenizer.train([text] * 5, vocab_size=300, mode="bytes", progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=32, n_embd=32, n_layer=2, n_head=2)
    model = new_task_model(GPT(cfg, seed=0), tokenizer, SPEC, fcfg)
    encoded = encode_splits(mood_task(sizes=(64, 16, 16)), tokenizer, cfg.n_ctx)
    return model, encoded


def config(lm_coef, **overrides):
    return FinetuneConfig(lm_coef=lm_coef, lr=LR, batch_size=8, micro_batch_size=8, seed=0,
                          **overrides)


@pytest.mark.parametrize("lm_coef", LAMBDAS)
def test_a_step_logs_l2_plus_lambda_l1_and_makes_that_update(lm_coef):
    fcfg = config(lm_coef)
    model, encoded = task_model_and_examples(fcfg)
    loss, l2, l1, _ = finetune_step(model, AdamW(model.params, weight_decay=fcfg.weight_decay),
                                    encoded["train"], STEP, LR, fcfg)
    if lm_coef == 0.0:
        assert l1 is None and loss == l2
    else:
        assert l1 > 0 and loss == pytest.approx(l2 + lm_coef * l1, rel=1e-12, abs=0)

    # the same update by hand: the step's batch in its two shards (halves), each with its
    # dropout stream, L3 with this lambda, the shards' shares added
    twin, _ = task_model_and_examples(fcfg)
    chosen = [encoded["train"][i] for i in batch_indices(len(encoded["train"]), fcfg, STEP)]
    halves = []
    with single_threaded_blas():  # as the step runs its shards: OpenBLAS's own threads may
        for first in (0, 4):      # change a product's last bits
            rng = device_rng("cpu", step_seed(fcfg.seed, STEP, first + 1))  # its first example's
            halves.append(twin.finetune_loss_and_grads(make_batch(chosen[first : first + 4]),
                                                       lm_coef, True, rng))
    (loss_a, grads, terms_a), (loss_b, grads_b, terms_b) = halves
    want = 0.5 * loss_a + 0.5 * loss_b
    for name, g in grads.items():
        g *= 0.5
        g += 0.5 * grads_b[name]
    terms = {"l2": 0.5 * terms_a["l2"] + 0.5 * terms_b["l2"]}
    clip_grad_norm(grads, fcfg.grad_clip)
    AdamW(twin.params, weight_decay=fcfg.weight_decay).step(grads, lr=LR)
    assert loss == want and l2 == terms["l2"]
    for name, value in twin.params.items():
        assert np.array_equal(model.params[name], value), name


@pytest.mark.parametrize("lm_coef", LAMBDAS)
def test_every_logged_line_of_a_run_is_l2_plus_lambda_l1(lm_coef, tmp_path):
    fcfg = config(lm_coef, epochs=1, log_every=1)
    model, encoded = task_model_and_examples(fcfg)
    finetune(model, AdamW(model.params, lr=LR, weight_decay=fcfg.weight_decay),
             encoded["train"], encoded["validation"], fcfg, tmp_path, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 9))  # 64 examples, batches of 8
    for line in lines:
        if lm_coef == 0.0:
            assert line["l1"] is None and line["loss"] == line["l2"]
        else:
            assert line["loss"] == pytest.approx(line["l2"] + lm_coef * line["l1"], rel=1e-12)
