"""What every lesson's checks module is made of: an Exercise, and the solutions switch."""

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    solution: object  # the reference answer: a function or a value
    check: Callable  # check(answer) raises AssertionError, with a hint, when it is wrong


def show_solutions(on=True):
    """Let `exercise` hand back the reference solutions (for this Python process)."""
    os.environ["MINIGPT1_SOLUTIONS"] = "1" if on else "0"


def solutions_shown():
    return os.environ.get("MINIGPT1_SOLUTIONS") == "1"
