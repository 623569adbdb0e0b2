"""A training step on every core that gives the same numbers on any number of them: the batch
in shards fixed by the batch (training/update.py), run in threads (fast/batch_threads.py),
each sequence's dropout masks from its own counter-based stream (training/dropout_streams.py;
fine-tuning: each shard's from a generator seeded by its first example), the shards'
gradients added in one fixed tree (PairwiseSum)."""

import threading
from dataclasses import replace

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.fast import attention, gelu, products
from minigpt1.finetuning.task_model import TaskModel
from minigpt1.training.distributed import World
from minigpt1.training.dropout_streams import DropoutStreams
from minigpt1.training.lm_objective import TrainConfig, batch_loss_and_grads, train_step
from minigpt1.training.optim import AdamW
from minigpt1.training.task_objective import finetune_step
from minigpt1.training.update import PairwiseSum, batch_shards
from tests.test_finetune_lambda import config, task_model_and_examples
from tests.test_threads import on_threads

CFG = GPTConfig.preset("tiny", n_layer=2, n_embd=32, n_head=4, n_ctx=16, vocab_size=60,
                       embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1)
IDS = np.random.default_rng(0).integers(0, CFG.vocab_size, size=2000)


def train(threads, steps=3, seed=4, batch=8, micro=8, dtype="float32", cfg=CFG):
    """(losses, weights) after `steps` pre-training updates on `threads` threads."""
    model = GPT(cfg, seed=1, dtype=dtype)
    optimizer = AdamW(model.params, lr=1e-2, weight_decay=0.01)
    tcfg = TrainConfig(batch_size=batch, micro_batch_size=micro, seed=seed)
    losses = on_threads(threads, lambda: [
        train_step(model, optimizer, IDS, step, 1e-2, tcfg, cfg.n_ctx)[0] for step in range(steps)])
    return losses, model.params


def finetune(threads, steps=3, micro=2, lm_coef=0.25):
    """(losses, weights) after `steps` fine-tuning updates (dropout on) on `threads` threads."""
    fcfg = replace(config(lm_coef), micro_batch_size=micro)
    model, encoded = task_model_and_examples(fcfg)
    optimizer = AdamW(model.params, lr=1e-2, weight_decay=fcfg.weight_decay)
    losses = on_threads(threads, lambda: [
        finetune_step(model, optimizer, encoded["train"], step, 1e-2, fcfg)[:3]
        for step in range(steps)])
    return losses, model.params


class ShardRecorder:
    """Which threads the shards ran on, and the most that ran at once. With `together` > 1,
    the shards wait for each other in groups of that many (a barrier): the step must run that
    many at once, or the barrier breaks."""

    def __init__(self, together):
        self.names, self.running, self.most = set(), 0, 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(together, timeout=30) if together > 1 else None

    def run(self, fn):
        with self.lock:
            self.names.add(threading.current_thread().name)
            self.running += 1
            self.most = max(self.most, self.running)
        if self.barrier is not None:
            self.barrier.wait()
        try:
            return fn()
        finally:
            with self.lock:
                self.running -= 1


def record_shards(patch, together, model_class=GPT, method="lm_loss_and_grads"):
    """A ShardRecorder that sees every shard's call to the model while `patch` holds."""
    shards = ShardRecorder(together)
    real = getattr(model_class, method)
    patch.setattr(model_class, method, lambda self, *args, **kwargs: shards.run(
        lambda: real(self, *args, **kwargs)))
    return shards


def runs_on_1_2_and_4_threads(monkeypatch, run, **model_method):
    """{threads: run(threads)}, checking that the shards ran that many at a time."""
    runs = {}
    for threads in (1, 2, 4):
        with monkeypatch.context() as patch:
            shards = record_shards(patch, threads, **model_method)
            runs[threads] = run(threads)
        assert shards.most == threads  # never more at once, and (the barrier) never fewer
        if threads == 1:
            assert shards.names == {threading.main_thread().name}
    return runs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_after_training_are_bit_identical_on_1_2_and_4_threads(dtype, monkeypatch):
    # 8 sequences in micro-batches of 2: 8 shards of one sequence, run 1, 2 or 4 at a time
    assert_identical(runs_on_1_2_and_4_threads(
        monkeypatch, lambda threads: train(threads, micro=2, dtype=dtype)))


@pytest.mark.parametrize("lm_coef", [0.0, 0.25])
def test_weights_after_fine_tuning_are_bit_identical_on_1_2_and_4_threads(lm_coef, monkeypatch):
    # 8 examples in micro-batches of 4: 4 shards of two examples each
    runs = runs_on_1_2_and_4_threads(
        monkeypatch, lambda threads: finetune(threads, micro=4, lm_coef=lm_coef),
        model_class=TaskModel, method="finetune_loss_and_grads")
    assert_identical(runs)
    # ... which could not hold by accident: other shards add in another order
    other = finetune(2, micro=8, lm_coef=lm_coef)[1]
    assert any(not np.array_equal(other[name], w) for name, w in runs[1][1].items())


def assert_identical(runs):
    """Every run's losses and weights are those of the first, bit for bit."""
    (losses, weights), *others = runs.values()
    for other_losses, other_weights in others:
        assert other_losses == losses
        for name, w in weights.items():
            np.testing.assert_array_equal(other_weights[name], w, err_msg=name)


def test_one_sequence_per_update_is_bit_identical_on_1_2_and_4_threads():
    """One shard: its matrix products are cut into fixed blocks (fast/products.py). On
    OpenBLAS's own threads, the tied head's backward at GPT-1's width and vocabulary,
    (128, 40478) @ (40478, 768), gives other bits on 1 and 2 threads."""
    cfg = GPTConfig.preset("gpt1", n_layer=1, n_ctx=128)
    assert_identical({threads: train(threads, steps=2, batch=1, micro=1, cfg=cfg)
                      for threads in (1, 2, 4)})


def rank(r, size):
    """Rank r of `size` as the batch sees it (which rows it takes); no MPI."""
    world = World()
    world.rank, world.size = r, size
    return world


@pytest.mark.parametrize("n_embd, n_head, vocab_size", [(64, 4, 60), (768, 12, 40478)])
def test_a_rank_holding_one_sequence_computes_what_one_process_does(n_embd, n_head, vocab_size,
                                                                    monkeypatch):
    """2 ranks x 1 sequence == 1 process x 2 sequences in micro-batches of 2, bit for bit. Each
    rank runs its sequence as a lone shard, on every core; the process runs the same two
    shards of one sequence side by side. A small model with every part cut however small,
    then GPT-1's width and vocabulary, whose products are cut as they are in training."""
    if n_embd == 64:
        for module, name in [(products, "MIN_WORK"), (attention, "MIN_GROUPED_SCORES"),
                             (gelu, "MIN_SPLIT")]:
            monkeypatch.setattr(module, name, 1)
    cfg = GPTConfig.preset("gpt1", n_layer=1, n_ctx=32, n_embd=n_embd, n_head=n_head,
                           vocab_size=vocab_size)
    model = GPT(cfg, seed=1)
    windows = np.random.default_rng(0).integers(0, vocab_size, size=(2, cfg.n_ctx + 1))
    for threads in (1, 2):
        one = on_threads(threads, lambda: batch_loss_and_grads(model, windows, 4, 0, 2))
        (loss0, grads0), (loss1, grads1) = on_threads(threads, lambda: [
            batch_loss_and_grads(model, windows, 4, 0, 2, rank(r, 2)) for r in (0, 1)])
        assert loss0 + loss1 == one[0]  # an all-reduce of two ranks: one addition
        for name, g in one[1].items():
            np.testing.assert_array_equal(grads0[name] + grads1[name], g, err_msg=name)


def test_the_same_run_with_another_seed_or_micro_batch_differs():
    """The equalities above could not hold by accident: the seed changes the masks, and other
    shards add the gradients in another order."""
    base = train(2, micro=2)
    assert train(2, micro=2, seed=5)[0] != base[0]
    other = train(2, micro=4)[1]
    assert any(not np.array_equal(other[name], w) for name, w in base[1].items())


def test_each_sequence_draws_its_masks_whatever_shard_holds_it():
    whole = DropoutStreams(7, 3, range(0, 4))
    halves = DropoutStreams(7, 3, range(0, 2)), DropoutStreams(7, 3, range(2, 4))
    for shape in [(4, 5, 6), (4, 1, 6)]:
        drawn = whole.random(shape, np.float32)
        split = np.concatenate([h.random((2, *shape[1:]), np.float32) for h in halves])
        np.testing.assert_array_equal(drawn, split)
        assert drawn.dtype == np.float32 and 0.0 <= drawn.min() and drawn.max() < 1.0
    # the next dropout of the pass, another step, another seed: other numbers
    first = DropoutStreams(7, 3, range(0, 1)).random((1, 64), np.float64)
    for streams in [DropoutStreams(7, 4, range(0, 1)), DropoutStreams(8, 3, range(0, 1))]:
        assert not np.array_equal(streams.random((1, 64), np.float64), first)
    again = DropoutStreams(7, 3, range(0, 1))
    again.random((1, 64), np.float64)
    assert not np.array_equal(again.random((1, 64), np.float64), first)
    with pytest.raises(ValueError, match="3 rows drawn from the streams of 4 sequences"):
        whole.random((3, 5), np.float32)


def test_shards_depend_on_the_batch_and_every_rank_cuts_where_one_process_does():
    # each micro-batch in two halves, the first the larger; a micro-batch of one stays whole
    assert batch_shards(range(0, 8), 4) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert batch_shards(range(0, 7), 3) == [range(0, 2), range(2, 3), range(3, 5), range(5, 6),
                                            range(6, 7)]
    assert batch_shards(range(0, 3), 1) == [range(0, 1), range(1, 2), range(2, 3)]
    # a rank's share (rows 8..16 of 16, micro-batches of 4) is cut as the whole batch is
    whole = batch_shards(range(0, 16), 4)
    assert batch_shards(range(8, 16), 4) == [s for s in whole if s.start >= 8]


def terms(values):
    return [(float(v), {"g": np.array([v], dtype=np.float32)}) for v in values]


def test_pairwise_sum_adds_in_one_fixed_tree():
    values = np.float32([1e8, 1.0, -1e8, 1.0, 3.0, 1e-3, 7.0, -2.5])
    total = PairwiseSum()
    for term in terms(values):
        total.add(term)
    loss, grads = total.total()
    a, b, c, d, e, f, g, h = values
    assert grads["g"][0] == ((a + b) + (c + d)) + ((e + f) + (g + h))
    assert grads["g"][0] != np.float32(((((((a + b) + c) + d) + e) + f) + g) + h)  # order shows
    # each half summed apart (as two ranks do) and then added: the same bits
    halves = []
    for part in (values[:4], values[4:]):
        half = PairwiseSum()
        for term in terms(part):
            half.add(term)
        halves.append(half.total()[1]["g"][0])
    assert halves[0] + halves[1] == grads["g"][0]
    # a number of terms that is not a power of two: the leftover subtrees join from the right
    three = PairwiseSum()
    for term in terms(values[:3]):
        three.add(term)
    assert three.total()[1]["g"][0] == (a + b) + c


def test_streams_draw_on_the_models_device_the_same_numbers_for_the_same_key(device):
    def draw(step):
        return backend.to_numpy(DropoutStreams(2, step, range(3, 5), device).random(
            (2, 4, 6), np.float32))

    first = draw(0)
    assert first.dtype == np.float32 and first.shape == (2, 4, 6)
    np.testing.assert_array_equal(draw(0), first)
    assert not np.array_equal(draw(1), first)
