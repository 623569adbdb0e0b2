"""Rows of a batch run in threads (fast/batch_threads.py), NumPy's OpenBLAS switched while running
(fast/blas.py), and row sums by BLAS (fast/row_sums.py)."""

import dataclasses
import sys
import threading
import time

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.fast import batch_threads as threads
from minigpt1.fast import blas as openblas_control
from minigpt1.fast.row_sums import row_mean, row_sum
from minigpt1.finetuning.task_model import TaskModel
from tests.test_task_model import SPECS, V, task_batch

CFG = GPTConfig.preset("tiny", n_layer=2, n_embd=32, n_head=4, n_ctx=16, vocab_size=50,
                       embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1)


class FakeBLAS:
    """Stands in for OpenBLAS: records every thread count it was given."""

    def __init__(self, count):
        self.count, self.history = count, []

    def get(self):
        return self.count

    def set(self, count):
        self.count = count
        self.history.append(count)


@pytest.fixture
def blas(monkeypatch):
    fake = FakeBLAS(2)
    monkeypatch.setattr(threads, "openblas", lambda: fake)
    monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 1)
    return fake


def linux_openblas():
    if not sys.platform.startswith("linux"):
        pytest.skip("the Linux wheels of NumPy bundle OpenBLAS; other platforms may not")
    blas = threads.openblas()
    assert blas is not None, "no OpenBLAS in this process: evaluation would run on one core"
    return blas


def on_threads(threads, run):
    """run() with NumPy's BLAS on `threads` threads."""
    blas = linux_openblas()
    before = blas.get()
    blas.set(threads)
    try:
        return run()
    finally:
        blas.set(before)


def test_numpys_openblas_is_found_and_its_thread_count_can_be_set():
    blas = linux_openblas()
    assert blas.core and blas.core.isprintable()  # the kernels' name, as benchmarks print it
    before = blas.get()
    try:
        blas.set(1)
        assert blas.get() == 1
    finally:
        blas.set(before)
    assert blas.get() == before


def test_the_kernels_are_named_with_who_chose_them(monkeypatch):
    class Named:
        core = "SkylakeX"

    monkeypatch.setattr(openblas_control, "openblas", lambda: Named)
    assert openblas_control.kernels({}) == "OpenBLAS SkylakeX kernels, chosen for this CPU"
    assert openblas_control.kernels({"OPENBLAS_CORETYPE": "Haswell"}) == (
        "OpenBLAS SkylakeX kernels, pinned by OPENBLAS_CORETYPE=Haswell")
    Named.core = None  # a build that does not say
    assert openblas_control.kernels({}) == ""
    monkeypatch.setattr(openblas_control, "openblas", lambda: None)  # another BLAS
    assert openblas_control.kernels({}) == ""


def test_numpys_own_copy_is_chosen_over_other_wheels_copies():
    # SciPy's wheel maps an OpenBLAS of its own; switching that one would not touch NumPy's
    bundled = [p for p in openblas_control.numpy_openblas_candidates() if "numpy" in p]
    if not bundled:
        pytest.skip("this NumPy has no OpenBLAS of its own in its package folder")
    threads.openblas.cache_clear()
    try:
        import scipy.linalg  # noqa: F401  (maps scipy.libs/libscipy_openblas*, when installed)
    except ImportError:
        pass
    assert not any("scipy.libs" in p for p in openblas_control.numpy_openblas_candidates())
    assert threads.openblas().path == bundled[0]


def test_an_openmp_build_is_not_switched(monkeypatch):
    class OpenMPLibrary:  # what ctypes.CDLL would return for an OpenMP build
        openblas_get_num_threads = staticmethod(lambda: 2)
        openblas_set_num_threads = staticmethod(lambda count: None)
        openblas_get_parallel = staticmethod(lambda: openblas_control.OPENMP)

    monkeypatch.setattr(openblas_control.ctypes, "CDLL", lambda path: OpenMPLibrary())
    with pytest.raises(OSError, match="OpenMP"):
        openblas_control.OpenBLAS("libopenblas.so")


def test_real_openblas_split_gives_the_one_pass_loss_and_its_threads_back(monkeypatch):
    blas = linux_openblas()
    before, calls = blas.get(), []
    if before < 2:
        pytest.skip("BLAS runs one thread here: nothing to split")
    real_set = blas.set
    monkeypatch.setattr(blas, "set", lambda count: (calls.append(count), real_set(count)))
    monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 1)
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(4, CFG.n_ctx + 1))
    for dtype in ("float32", "float64"):
        model = GPT(CFG, seed=3, dtype=dtype)
        assert model.lm_loss(ids) == model.lm_loss_and_grads(ids)[0]
    assert calls == [1, before] * 2 and blas.get() == before


@pytest.mark.parametrize("n_rows, sizes", [
    (16, [4, 4, 4, 4]), (5, [1, 1, 1, 2]), (7, [1, 2, 2, 2]), (1, [1]), (3, [1, 1, 1]),
])
def test_row_shards_cover_every_row_once_the_same_on_any_core_count(blas, n_rows, sizes):
    for count in (1, 2, 3, 8):
        blas.count = count
        shards = threads.row_shards(n_rows, elements_per_row=1)
        assert [s.stop - s.start for s in shards] == sizes
        assert [i for s in shards for i in range(s.start, s.stop)] == list(range(n_rows))


def test_too_little_work_is_not_split_and_another_blas_never_is(blas, monkeypatch):
    monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 100)
    assert threads.row_shards(16, elements_per_row=10) == [slice(0, 16)]  # 160 elements: 1 share
    assert len(threads.row_shards(16, elements_per_row=20)) == 3  # 320 elements
    monkeypatch.setattr(threads, "openblas", lambda: None)  # another BLAS: never split
    assert threads.row_shards(16, elements_per_row=1000) == [slice(0, 16)]


def test_shards_run_at_once_with_single_threaded_blas_restored_after(blas):
    both_running = threading.Barrier(2, timeout=10)  # breaks unless both shards run together
    seen = []

    def work(rows):
        seen.append(blas.get())
        both_running.wait()
        return rows.start

    assert threads.map_row_shards(work, 10, 1) == [0, 2, 5, 7]  # in shard order, 2 at a time
    assert seen == [1] * 4 and blas.history == [1, 2] and blas.count == 2


def test_ctrl_c_waits_for_the_running_shards_before_blas_gets_its_threads_back(blas, monkeypatch):
    started, finished = threading.Semaphore(0), []
    real_wait = threads.wait

    def interrupted_wait(futures):  # Ctrl-C once both shards run
        started.acquire(timeout=10)
        started.acquire(timeout=10)
        monkeypatch.setattr(threads, "wait", real_wait)  # the second wait, in finally, is real
        raise KeyboardInterrupt

    def work(rows):
        started.release()
        time.sleep(0.2)
        finished.append(blas.get())  # BLAS must still be at one thread here
        return rows.start

    monkeypatch.setattr(threads, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        threads.map_row_shards(work, 2, 1)  # two shards of one row
    assert finished == [1, 1] and blas.count == 2


def test_blas_threads_come_back_when_a_shard_raises(blas):
    def work(rows):
        if rows.start:
            raise ValueError("shard failed")
        return 0

    with pytest.raises(ValueError, match="shard failed"):
        threads.map_row_shards(work, 10, 1)
    assert blas.count == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_evaluation_gives_the_one_pass_loss_exactly(blas, monkeypatch, dtype):
    model = GPT(CFG, seed=3, dtype=dtype)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, CFG.vocab_size, size=(5, CFG.n_ctx + 1))
    mask = rng.random(ids.shape) < 0.6
    for m in (None, mask):
        calls = len(blas.history)
        split = model.lm_loss(ids, m)
        assert blas.history[calls:] == [1, 2]  # it did run in shards
        # the loss of the training path, which never splits, with dropout off
        assert split == model.lm_loss_and_grads(ids, m)[0]
        monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 1 << 60)
        assert model.lm_loss(ids, m) == split  # one shard
        monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 1)


def test_rows_too_few_to_split_still_run_on_one_blas_thread(blas, monkeypatch):
    # OpenBLAS's own threads may change a product's last bits (they do on some CPUs), and a
    # rank under mpiexec runs one thread: a batch evaluates on one BLAS thread however it is cut
    monkeypatch.setattr(threads, "MIN_SHARD_ELEMENTS", 1 << 60)
    seen = []
    assert threads.map_row_shards(lambda rows: seen.append(blas.get()) or rows, 3, 1) == [
        slice(0, 3)]
    assert seen == [1] and blas.history == [1, 2]
    threads.map_row_shards(lambda rows: seen.append(blas.get()), 1, 1)  # a lone sequence
    assert seen == [1, 2] and blas.history == [1, 2]  # keeps BLAS's threads


@pytest.mark.parametrize("kind", ["classification", "regression", "multiple_choice"])
def test_task_evaluation_in_shares_gives_the_same_numbers_on_any_core_count(blas, kind):
    spec = SPECS[kind]
    cfg = dataclasses.replace(CFG, vocab_size=V + 3, n_ctx=32)
    model = TaskModel(GPT(cfg, seed=3), spec, seed=1)
    batch = task_batch(spec, n_examples=5)
    l2, scores = model.evaluate(batch)
    assert blas.history == [1, 2]  # it did run in shares
    for count in (1, 4):
        blas.count = count
        l2_here, scores_here = model.evaluate(batch)
        assert l2_here == l2
        np.testing.assert_array_equal(scores_here, scores)
    # one pass over the whole batch: equal to rounding
    one_pass, _, one_pass_scores, _ = model._forward(model._prepare(batch), 0.0, False, None)
    np.testing.assert_allclose(scores, one_pass_scores, rtol=1e-5, atol=1e-6)
    assert l2 == pytest.approx(float(one_pass), rel=1e-5)


def test_split_evaluation_still_refuses_a_mask_with_no_target(blas):
    model = GPT(CFG, seed=3)
    ids = np.zeros((4, 6), dtype=np.int64)
    mask = np.zeros(ids.shape)
    mask[:, 0] = 1  # position 0 is never a target
    with pytest.raises(ValueError, match="empty mask"):
        model.lm_loss(ids, mask)
    assert blas.history == []  # refused before any thread ran


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sum_and_mean_equal_numpys(shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for view in (x, x[..., ::2]):  # contiguous, and a strided view
        assert row_sum(view).shape == view.shape[:-1] + (1,)
        np.testing.assert_allclose(row_sum(view), view.sum(axis=-1, keepdims=True), **tol)
        np.testing.assert_allclose(row_mean(view), view.mean(axis=-1, keepdims=True), **tol)
        assert row_mean(view).dtype == dtype
