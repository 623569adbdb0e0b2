"""Checkpoint folders broken every way hypothesis finds: a load succeeds or raises FormatError
naming the broken file; never an exception from deep inside NumPy or zipfile, never a hang."""

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt1 import GPT
from minigpt1.errors import FormatError
from minigpt1.training.checkpoint import load_checkpoint, save_checkpoint
from minigpt1.training.optim import AdamW
from tests.robustness.fuzz import (
    CFG,
    FUZZ,
    broken_bytes,
    copy_of,
    json_values,
    loads_or_fails_cleanly,
    write_json,
)

FILES = ["params.npz", "optimizer.npz", "state.json"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    model = GPT(CFG, seed=0)
    optimizer = AdamW(model.params)
    optimizer.step({name: np.ones_like(p) for name, p in model.params.items()})
    save_checkpoint(run, 3, model.params, optimizer.state_dict(),
                    {"config": CFG.to_dict(), "total_steps": 10}, val_loss=1.5)
    return run


def folder_of(run):
    return next(p for p in (run / "checkpoints").iterdir() if p.is_dir())


def test_the_good_checkpoint_loads(good_run):
    assert load_checkpoint(good_run).step == 3


@FUZZ
@given(data=st.data(), name=st.sampled_from(FILES))
def test_damaged_file(good_run, data, name):
    with copy_of(good_run) as run:
        path = folder_of(run) / name
        path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        loads_or_fails_cleanly(lambda: load_checkpoint(run), run)


@FUZZ
@given(value=json_values, name=st.sampled_from(["state.json", "index.json"]))
def test_any_json_in_place_of_state_or_index(good_run, value, name):
    with copy_of(good_run) as run:
        path = run / "checkpoints" / name if name == "index.json" else folder_of(run) / name
        write_json(path, value)
        loads_or_fails_cleanly(lambda: load_checkpoint(run), run)


ARRAY_DTYPES = st.sampled_from(["float32", "float64", "float16", "int64", "bool", "complex64",
                                "uint8"])


@st.composite
def wrong_tensors(draw, good):
    """The good tensors with some dropped, renamed, reshaped, retyped, NaN-filled or added."""
    tensors = dict(good)
    for name in draw(st.lists(st.sampled_from(sorted(good)), min_size=1, max_size=3, unique=True)):
        change = draw(st.sampled_from(["drop", "shape", "dtype", "nan", "rename"]))
        value = tensors.pop(name)
        if change == "shape":
            tensors[name] = np.zeros(draw(st.lists(st.integers(0, 5), max_size=3)), value.dtype)
        elif change == "dtype":
            tensors[name] = value.astype(draw(ARRAY_DTYPES))
        elif change == "nan":
            tensors[name] = np.full_like(value, np.nan)
        elif change == "rename":
            tensors[draw(st.text(min_size=1, max_size=10))] = value
    if draw(st.booleans()):
        tensors[draw(st.text(min_size=1, max_size=10))] = np.zeros(2, draw(ARRAY_DTYPES))
    return tensors


def must_be_refused(tensors, good):
    """Whether the loader has to refuse these tensors in place of `good`."""
    if set(tensors) != set(good):
        return True
    for name, value in tensors.items():
        kind = "iu" if name == "step" else "f"  # the optimizer's step counter is an integer
        if value.dtype.kind not in kind or value.shape != good[name].shape:
            return True
        if kind == "f" and not np.isfinite(value).all():
            return True
    return False


@FUZZ
@given(data=st.data(), name=st.sampled_from(["params.npz", "optimizer.npz"]))
def test_wrong_tensors(good_run, data, name):
    with copy_of(good_run) as run:
        path = folder_of(run) / name
        with np.load(path) as npz:
            good = {k: npz[k] for k in npz.files}
        tensors = data.draw(wrong_tensors(good))
        buffer = io.BytesIO()
        np.savez(buffer, **tensors)
        path.write_bytes(buffer.getvalue())
        error = loads_or_fails_cleanly(lambda: load_checkpoint(run), run)
        if must_be_refused(tensors, good):
            assert isinstance(error, FormatError), f"accepted {sorted(tensors)}"
