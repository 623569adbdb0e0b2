"""L2 and L3 for the four task kinds: gradient checks in float64 and grad L3 = grad L2 + lambda
grad L1, through the special-token rows, the extract gather, the similarity sum and the
multiple-choice softmax."""

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.finetuning.task_model import TaskModel, transfer_layers, with_special_tokens
from minigpt1.finetuning.transformations import EncodedExample, TaskSpec, make_batch, transform
from minigpt1.gradcheck import check_sampled, failures

SPECS = {
    "classification": TaskSpec("cls", "classification", ("a", "b", "c"), "accuracy"),
    "entailment": TaskSpec("ent", "entailment", ("no", "yes"), "accuracy"),
    "similarity": TaskSpec("sim", "similarity", ("different", "same"), "f1"),
    "regression": TaskSpec("reg", "similarity", (), "pearson"),
    "multiple_choice": TaskSpec("mc", "multiple_choice", ("A", "B", "C"), "accuracy"),
}
V = 64  # ordinary tokens; the specials get the three rows after them
START, DELIM, EXTRACT = V, V + 1, V + 2


def task_batch(spec, seed=0, n_examples=2):
    """Examples of random text, of different lengths so that padding is exercised."""
    rng = np.random.default_rng(seed)
    encoded = []
    for b in range(n_examples):
        label = [1, 0.7 if spec.regression else 0][b % 2]
        segments = [list(rng.integers(0, V, size=3 + b + k)) for k in range(spec.n_segments)]
        sequences = transform(spec.kind, segments, START, DELIM, EXTRACT)
        encoded.append(EncodedExample(tuple(map(tuple, sequences)), label, False))
    return make_batch(encoded, spec.regression)


def float64_task_model(spec, device):
    cfg = GPTConfig.preset("tiny", vocab_size=V + 3, n_layer=2)
    model = TaskModel(GPT(cfg, seed=0, device=device, dtype="float64"), spec, seed=1)
    rng = np.random.default_rng(2)  # away from the tidy initial values: no bug hides at 0 or 1
    for p in model.params.values():
        p += backend.to_device(rng.normal(0, 0.05, size=p.shape), device, "float64")
    return model


@pytest.mark.parametrize("lm_coef", [0.0, 0.5])
@pytest.mark.parametrize("kind", list(SPECS))
def test_finetune_gradients(device, kind, lm_coef):
    spec = SPECS[kind]
    model = float64_task_model(spec, device)
    batch = task_batch(spec)

    def run():  # a fresh generator every call: the same dropout masks each time
        return model.finetune_loss_and_grads(batch, lm_coef, train=True,
                                             rng=backend.device_rng(device, 3))

    _, grads, _ = run()
    errors = check_sampled(lambda: run()[0], model.params, grads, samples=4)
    if kind == "multiple_choice":
        # a softmax over the K answers ignores a shift shared by all: the classifier's bias
        # and, without the LM term, the last LayerNorm's bias (it moves every answer's h alike)
        # get exactly 0, and a relative error against finite-difference noise means nothing
        shared = ["clf.bias"] + ([] if lm_coef else [f"h.{model.gpt.cfg.n_layer - 1}.ln_2.bias"])
        for name in shared:
            assert np.abs(backend.to_numpy(grads[name])).max() < 1e-12, name
            del errors[name]
    bad = failures(errors, 1e-6)
    assert not bad, f"{kind}, lambda={lm_coef}: gradient check failed:\n" + bad
    used = [START, EXTRACT] if kind == "classification" else [START, DELIM, EXTRACT]
    special_rows = backend.to_numpy(grads["tokens_embed.weight"])[used]
    assert np.all(np.abs(special_rows).sum(axis=1) > 0), "every special row in use must learn"


@pytest.mark.parametrize("kind", list(SPECS))
def test_l3_is_l2_plus_lambda_l1(kind):
    spec, lam = SPECS[kind], 0.5
    model = float64_task_model(spec, "cpu")
    batch = task_batch(spec, seed=4)
    l3, g3, parts = model.finetune_loss_and_grads(batch, lam)
    l2, g2, _ = model.finetune_loss_and_grads(batch, 0.0)
    # L1 by the plain language-model path: each sequence's mean over its real targets
    B, S, T = batch.ids.shape
    ids, mask = batch.ids.reshape(B * S, T), batch.mask.reshape(B * S, T).astype(np.float64)
    mask[:, 1:] /= mask[:, 1:].sum(axis=1, keepdims=True)
    l1, g1 = model.gpt.lm_loss_and_grads(ids, mask)
    assert np.isclose(parts["l1"], l1, rtol=1e-12) and np.isclose(l3, l2 + lam * l1, rtol=1e-12)
    for name, grad in g3.items():
        expected = g2[name] + lam * g1.get(name, 0.0)
        assert np.allclose(grad, expected, rtol=1e-9, atol=1e-13), name


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_scale_multiplies_the_loss_and_every_gradient_but_not_the_parts(kind):
    """A shard's share of the batch: a power of two scales exactly, so the bits must match;
    3/7 scales to rounding."""
    model = float64_task_model(SPECS[kind], "cpu")
    batch = task_batch(SPECS[kind], seed=5)
    loss, grads, parts = model.finetune_loss_and_grads(batch, 0.5)
    for scale, exact in [(0.25, True), (3 / 7, False)]:
        scaled, scaled_grads, scaled_parts = model.finetune_loss_and_grads(batch, 0.5,
                                                                           scale=scale)
        assert scaled_parts == parts and scaled == pytest.approx(scale * loss, rel=1e-15)
        for name, grad in grads.items():
            if exact:
                np.testing.assert_array_equal(scaled_grads[name], scale * grad, err_msg=name)
            else:
                np.testing.assert_allclose(scaled_grads[name], scale * grad, rtol=1e-9,
                                           atol=1e-12 * np.abs(grad).max(), err_msg=name)


def test_similarity_is_symmetric():
    # both orderings are read and added: swapping A and B cannot change the scores
    spec = SPECS["similarity"]
    model = float64_task_model(spec, "cpu")
    batch = task_batch(spec)
    swapped = batch._replace(ids=batch.ids[:, ::-1], mask=batch.mask[:, ::-1],
                             extract=batch.extract[:, ::-1])
    assert np.allclose(model.scores(batch), model.scores(swapped), atol=1e-12)


def test_padding_changes_nothing():
    # an example scores the same alone as beside a longer one that forces padding
    spec = SPECS["multiple_choice"]
    model = float64_task_model(spec, "cpu")
    batch = task_batch(spec)
    alone = task_batch(spec)._replace(
        ids=batch.ids[:1, :, : batch.extract[0].max() + 1],
        mask=batch.mask[:1, :, : batch.extract[0].max() + 1],
        extract=batch.extract[:1], labels=batch.labels[:1])
    assert np.allclose(model.scores(batch)[0], model.scores(alone)[0], atol=1e-12)


@pytest.mark.parametrize("kind", list(SPECS))
def test_evaluate_is_l2_and_scores_from_one_pass(kind):
    spec = SPECS[kind]
    model = float64_task_model(spec, "cpu")
    batch = task_batch(spec)
    l2, scores = model.evaluate(batch)
    assert l2 == model.finetune_loss(batch, lm_coef=0.0)[1]
    assert np.array_equal(scores, model.scores(batch))


def test_labels_outside_the_task_are_refused():
    spec = SPECS["classification"]
    model = TaskModel(GPT(GPTConfig.preset("tiny", vocab_size=V + 3, n_layer=1)), spec)
    batch = task_batch(spec)._replace(labels=np.array([0, 3]))
    with pytest.raises(ValueError, match="label 3 is outside 0..2"):
        model.finetune_loss_and_grads(batch)


def test_special_rows_appended_fresh():
    from minigpt1.tokenizer.bpe import BPETokenizer

    tokenizer = BPETokenizer.train(["to be or not to be"] * 3, vocab_size=270, mode="bytes",
                                   progress=False)
    cfg = GPTConfig.preset("tiny", vocab_size=tokenizer.vocab_size, n_layer=1)
    gpt = GPT(cfg, seed=0)
    bigger = with_special_tokens(gpt, tokenizer, seed=5)
    assert bigger.cfg.vocab_size == cfg.vocab_size + 3 == tokenizer.vocab_size
    wte = bigger.params["tokens_embed.weight"]
    assert np.array_equal(wte[: cfg.vocab_size], gpt.params["tokens_embed.weight"])
    assert 0.01 < wte[cfg.vocab_size :].std() < 0.03  # N(0, 0.02) rows
    assert tokenizer.special_id("_classify_") == cfg.vocab_size + 2
    assert with_special_tokens(bigger, tokenizer) is bigger  # nothing more to add


@pytest.mark.parametrize("n", [-1, 0, 1])
def test_transfer_layers(n):
    pretrained = GPT(GPTConfig.preset("tiny", n_layer=2), seed=0)
    model = transfer_layers(pretrained, n, seed=9)
    for name, p in model.params.items():
        layer = int(name.split(".")[1]) if name.startswith("h.") else -1
        kept = n >= 0 and layer < n
        same = np.array_equal(p, pretrained.params[name])
        assert same == kept or name.endswith(".bias") or ".ln_" in name, name
