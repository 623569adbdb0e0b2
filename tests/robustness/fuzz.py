"""What every fuzz test shares: how many cases, how a file is broken, what a clean failure is.

Two hypothesis profiles: "ci" (the default: 200 cases per test, the same cases every run, a
couple of minutes in all) and "long" (2,000 fresh random cases per test):

    MINIGPT1_FUZZ_PROFILE=long python -m pytest tests/robustness

MINIGPT1_FUZZ_EXAMPLES overrides the number of cases of either profile.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from minigpt1 import GPTConfig
from minigpt1.errors import FormatError

QUIET = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=200, derandomize=True, **QUIET)
settings.register_profile("long", max_examples=2000, **QUIET)
PROFILE = settings.get_profile(os.environ.get("MINIGPT1_FUZZ_PROFILE", "ci"))
EXAMPLES = int(os.environ.get("MINIGPT1_FUZZ_EXAMPLES", PROFILE.max_examples))
FUZZ = settings(PROFILE, max_examples=EXAMPLES)

# the smallest GPT worth saving: files of a few kilobytes, loaded in milliseconds
CFG = GPTConfig.preset("tiny", n_layer=1, n_embd=8, n_head=2, n_ctx=4, vocab_size=7)

# any JSON value, nested a few levels
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


# JSON texts that trip parsers: Python refuses huge integers and recurses on deep nesting
HOSTILE_JSON = {
    "an integer of 5000 digits": "1" * 5000,
    "100,000 nested lists": "[" * 100_000 + "]" * 100_000,
    "100,000 nested objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "NaN": "NaN",
}


@st.composite
def broken_bytes(draw, good):
    """`good` cut short, with bytes overwritten, or with bytes inserted: the usual damage."""
    how = draw(st.sampled_from(["truncate", "overwrite", "insert"]))
    if how == "truncate":
        return good[: draw(st.integers(0, max(0, len(good) - 1)))]
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if how == "overwrite":
            data[at : at + len(chunk)] = chunk
        else:
            data[at:at] = chunk
    return bytes(data)


@contextmanager
def copy_of(folder):
    """A scratch copy of a folder of files (flat or nested), deleted afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(folder).name
        for path in Path(folder).rglob("*"):
            if path.is_file():
                dest = target / path.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())
        yield target


def loads_or_fails_cleanly(load, folder):
    """Run load(); it may succeed, or raise FormatError naming a file in `folder`. Any other
    exception (a FileNotFoundError too: every file is there) is a robustness bug and
    propagates to fail the test."""
    try:
        load()
    except FormatError as err:
        assert str(folder) in str(err), f"the message names no file of {folder}: {err}"
        return err
    return None


def write_json(path, value):
    Path(path).write_text(json.dumps(value), encoding="utf-8")
