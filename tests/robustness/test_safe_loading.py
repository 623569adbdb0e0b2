"""Loading a file never runs code from it: crafted pickles are refused without being opened.

The payload below, if ever unpickled, creates a marker file; every test checks that it does
not exist afterwards. A source scan makes the rule hold for code not written yet.
"""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import GPT, from_pretrained
from minigpt1.errors import FormatError
from minigpt1.training.checkpoint import load_checkpoint, save_checkpoint
from minigpt1.training.optim import AdamW
from tests.robustness.fuzz import CFG

PACKAGE = Path(__file__).resolve().parents[2] / "minigpt1"


class Payload:
    """Unpickling this creates `marker`: proof that the loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_object_array_in_a_checkpoint_is_refused(tmp_path):
    model = GPT(CFG, seed=0)
    save_checkpoint(tmp_path, 1, model.params, AdamW(model.params).state_dict(), {})
    folder = next((tmp_path / "checkpoints").glob("step-*"))
    marker = tmp_path / "ran"
    np.savez(folder / "params.npz", **{"tokens_embed.weight": np.array([Payload(marker)])})
    with pytest.raises(FormatError, match="params.npz"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_pickled_weights_are_never_opened(tmp_path):
    GPT(CFG, seed=0).save_pretrained(tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(FileNotFoundError, match="pickle"):
        from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))  # a disguise
    with pytest.raises(FormatError, match="model.safetensors"):
        from_pretrained(tmp_path)
    assert not marker.exists()


def test_no_pickle_anywhere_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", source, re.M), path
        assert "allow_pickle=True" not in source, path
        assert "torch.load" not in source, path
        for call in re.findall(r"np\.load\([^)]*\)", source):
            assert "allow_pickle=False" in call, f"{path}: {call}"
