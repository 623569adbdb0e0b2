"""HuggingFace directories broken every way hypothesis finds: from_pretrained returns a model or
raises FormatError naming the broken file. Safetensors is a length, a JSON header and raw
bytes, so the header is attacked directly: lying lengths, unknown dtypes, shapes that do not
match, offsets that overlap or point past the end."""

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt1 import GPT, from_pretrained
from tests.robustness.fuzz import (
    CFG,
    FUZZ,
    broken_bytes,
    copy_of,
    json_values,
    loads_or_fails_cleanly,
    write_json,
)


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "model"
    GPT(CFG, seed=0).save_pretrained(path)
    return path


def split(blob):
    """A safetensors file -> (header dict, data bytes)."""
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def join(header, data):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_the_good_directory_loads(good_dir):
    assert from_pretrained(good_dir).cfg == CFG


@FUZZ
@given(data=st.data())
def test_damaged_weights_file(good_dir, data):
    with copy_of(good_dir) as model:
        path = model / "model.safetensors"
        path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        loads_or_fails_cleanly(lambda: from_pretrained(model), model)


@FUZZ
@given(length=st.integers(0, 2**64 - 1))
def test_lying_header_length(good_dir, length):
    with copy_of(good_dir) as model:
        path = model / "model.safetensors"
        path.write_bytes(struct.pack("<Q", length) + path.read_bytes()[8:])
        loads_or_fails_cleanly(lambda: from_pretrained(model), model)


DTYPES = st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3"])


@st.composite
def bad_entry(draw, entry, data_size):
    """One tensor's header entry with its dtype, shape or offsets changed."""
    entry = dict(entry)
    field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "junk"]))
    if field == "dtype":
        entry["dtype"] = draw(DTYPES | st.text(max_size=6))
    elif field == "shape":
        entry["shape"] = draw(st.lists(st.integers(0, 2**40), max_size=4))
    elif field == "data_offsets":
        entry["data_offsets"] = draw(st.lists(st.integers(0, 2 * data_size), min_size=2,
                                              max_size=2))
    else:
        entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(json_values)
    return entry


@FUZZ
@given(data=st.data())
def test_bad_header_entries(good_dir, data):
    with copy_of(good_dir) as model:
        path = model / "model.safetensors"
        header, payload = split(path.read_bytes())
        names = sorted(k for k in header if k != "__metadata__")
        for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3)):
            header[name] = data.draw(bad_entry(header[name], len(payload)))
        path.write_bytes(join(header, payload))
        loads_or_fails_cleanly(lambda: from_pretrained(model), model)


@FUZZ
@given(data=st.data())
def test_bad_config(good_dir, data):
    with copy_of(good_dir) as model:
        path = model / "config.json"
        config = json.loads(path.read_text())
        if data.draw(st.booleans()):
            config = data.draw(json_values)  # anything at all
        else:
            for key in data.draw(st.lists(st.sampled_from(sorted(config)), min_size=1,
                                          max_size=3)):
                config[key] = data.draw(json_values)
        write_json(path, config)
        loads_or_fails_cleanly(lambda: from_pretrained(model), model)
