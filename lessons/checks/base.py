"""What every lesson's checks module is made of: an Exercise, its typical mistakes, the
solutions switch, and the guard that keeps the library's own answer out of reach.

An exercise asks for something the library already has (a BPE merge, a backward pass, the
AdamW update). A check that only compared outputs would pass an answer that calls the library,
so while the student's function runs, every library function listed in `Exercise.library` is
switched off: calling it raises `LibraryUnavailable`, with a hint. The switch is made in every
minigpt1 module and in the namespace the answer was written in (the notebook), and undone as
soon as the answer returns.
"""

import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps

import numpy as np


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, and a fragment of the hint its check must give."""

    answer: object
    hint: str


@dataclass(frozen=True)
class Exercise:
    solution: object  # the reference answer: a function or a value
    check: Callable  # check(answer) raises AssertionError, with a hint, when it is wrong
    mistakes: tuple = ()  # Mistakes the check is tested with (at least two per exercise)
    library: tuple = ()  # library functions that would answer it: off while the answer runs


class LibraryUnavailable(AssertionError):
    """Raised by a library function that the exercise asks the student to write."""


SWITCHED_OFF = "is switched off while this exercise is checked"


def as_array(answer, shape, what):
    """The answer as a float64 array of `shape`, or an AssertionError that says what it is."""
    assert answer is not None, f"{what} returned None: return the array"
    answer = np.asarray(answer, dtype=np.float64)
    assert answer.shape == shape, f"{what} returned shape {answer.shape}, expected {shape}"
    return answer


def as_pair(answer, what):
    """The answer, when it is a tuple of two."""
    assert isinstance(answer, tuple) and len(answer) == 2, (
        f"return the pair {what}, got {type(answer)}")
    return answer


def show_solutions(on=True):
    """Let `exercise` hand back the reference solutions (for this Python process)."""
    os.environ["MINIGPT1_SOLUTIONS"] = "1" if on else "0"


def solutions_shown():
    return os.environ.get("MINIGPT1_SOLUTIONS") == "1"


def _blocker(function):
    name = f"{function.__module__}.{function.__qualname__}"

    def blocked(*args, **kwargs):
        raise LibraryUnavailable(
            f"{name} {SWITCHED_OFF}: it is the library's answer to the question. "
            f"Write the computation yourself, from the formula above the exercise.")

    blocked.plain = blocked  # a function with a fast path keeps its plain body as `.plain`
    return blocked


def _with_plain_bodies(functions):
    """`functions`, and the plain body behind each one that dispatches to a fast path."""
    found = list(functions)
    for function in functions:
        found += [getattr(function, attr) for attr in ("plain", "__wrapped__")
                  if callable(getattr(function, attr, None))]
    return found


def _owners(function):
    """The class a method is defined on, if it is one (e.g. BPE.encode -> BPE)."""
    owner = sys.modules.get(function.__module__)
    for part in function.__qualname__.split(".")[:-1]:
        owner = getattr(owner, part, None)
    return [owner] if isinstance(owner, type) else []


def _switch_names(blockers, spaces):
    """Point every name (in `spaces` and the dicts they hold) bound to a blocked function at
    its blocker; return the undo steps."""
    tables = [v for space in spaces for v in list(space.values()) if type(v) is dict]
    undo = []
    for space in spaces + tables:  # module globals, and tables of functions held in them
        for key, value in list(space.items()):
            found = blockers.get(id(value))
            if found is not None and found[0] is value:
                space[key] = found[1]
                undo.append(lambda s=space, k=key, v=value: s.__setitem__(k, v))
    return undo


def _switch_attributes(blockers, functions):
    """The `.plain` body a library function carries, and a method on its class."""
    undo = []
    for function in functions:
        if callable(getattr(function, "plain", None)):
            plain = function.plain
            function.plain = blockers[id(plain)][1]
            undo.append(lambda f=function, v=plain: setattr(f, "plain", v))
    for function, blocker in blockers.values():
        for owner in _owners(function):
            name = function.__name__
            original = owner.__dict__[name]
            setattr(owner, name, blocker)
            undo.append(lambda o=owner, n=name, v=original: setattr(o, n, v))
    return undo


@contextmanager
def library_unavailable(functions, namespace=None):
    """Within the block, every reference to `functions` in minigpt1's modules (and in the
    dicts they hold, such as a table of splitters), in their classes and in `namespace` (a
    dict of globals) points to a function that raises."""
    blockers = {id(f): (f, _blocker(f)) for f in _with_plain_bodies(functions)}
    spaces = [vars(m) for name, m in list(sys.modules.items())
              if m is not None and name.split(".")[0] == "minigpt1"]
    if namespace is not None:
        spaces.append(namespace)
    undo = _switch_names(blockers, spaces) + _switch_attributes(blockers, functions)
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()


def guarded(answer, functions):
    """`answer` (a function), run with `functions` switched off for the length of each call.

    An answer that is one of `functions` itself (`merge`, or a tokenizer's bound `encode`)
    is switched off as a whole."""
    if not callable(answer) or not functions:
        return answer
    itself = getattr(answer, "__func__", answer)
    if any(itself is function for function in functions):
        return _blocker(itself)
    namespace = getattr(answer, "__globals__", None)

    @wraps(answer)
    def run(*args, **kwargs):
        with library_unavailable(functions, namespace):
            return answer(*args, **kwargs)

    return run
