"""The lessons' exercises: for each, a check and the reference solution.

In a lesson, an exercise cell holds the student's answer under a decorator (or a call, for an
answer that is a value), and the cell after it checks that answer:

    @exercise("gelu_derivative")
    def gelu_derivative(x):
        raise NotImplementedError("your code here")

    check("gelu_derivative", gelu_derivative)

`check` raises AssertionError, with a hint, until the answer is right. With solutions on
(`MINIGPT1_SOLUTIONS=1` in the environment, or `show_solutions()`), `exercise` hands back the
reference solution instead of the student's: that is how the test suite runs every lesson end
to end, and how a student who is stuck can see a lesson through. The solutions are plain
Python in this package (one file per lesson), to read once you have tried.
"""

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

_NOTHING = object()


@dataclass(frozen=True)
class Exercise:
    solution: object  # the reference answer: a function or a value
    check: Callable  # check(answer) raises AssertionError, with a hint, when it is wrong


def show_solutions(on=True):
    """Let `exercise` hand back the reference solutions (for this Python process)."""
    os.environ["MINIGPT1_SOLUTIONS"] = "1" if on else "0"


def solutions_shown():
    return os.environ.get("MINIGPT1_SOLUTIONS") == "1"


@cache
def all_exercises():
    """{name: Exercise} from every module of this package (each defines EXERCISES)."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        exercises = importlib.import_module(f"{__name__}.{module.name}").EXERCISES
        if clash := found.keys() & exercises.keys():
            raise ValueError(f"exercise names defined twice: {sorted(clash)}")
        found.update(exercises)
    return found


def find(name):
    exercises = all_exercises()
    if name not in exercises:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(exercises))}")
    return exercises[name]


def exercise(name, answer=_NOTHING):
    """The student's answer, or the reference one when solutions are shown.

    `exercise(name, value)` for a value; `@exercise(name)` above a function."""
    reference = find(name).solution
    if answer is not _NOTHING:
        return reference if solutions_shown() else answer
    return lambda function: reference if solutions_shown() else function


def check(name, answer):
    """Raise AssertionError, saying what is wrong, unless `answer` solves the exercise."""
    try:
        find(name).check(answer)
    except NotImplementedError:
        raise AssertionError(f"exercise {name!r} is not done yet: write your answer in the "
                             f"cell above, then run both cells again") from None
    print(f"exercise {name!r}: correct")
