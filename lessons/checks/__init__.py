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
Python beside the lessons, one file per lesson (checks/tokenization.py for 01_tokenization,
and so on), to read once you have tried. They are not part of the minigpt1 library, and the
wheel does not ship them.

A notebook runs with lessons/ as its working directory, so it imports this package as
`checks`; from the project's root it is `lessons.checks`.
"""

from . import attention, auxiliary, finetuning, gpu, gradients, pretraining, tokenization
from .base import show_solutions, solutions_shown

__all__ = ["check", "exercise", "find", "show_solutions", "solutions_shown"]

_NOTHING = object()
LESSONS = (tokenization, gradients, attention, pretraining, finetuning, auxiliary, gpu)


def _all_exercises():
    """{name: Exercise} from every lesson's module (each defines EXERCISES)."""
    found = {}
    for lesson in LESSONS:
        if clash := found.keys() & lesson.EXERCISES.keys():
            raise ValueError(f"exercise names defined twice: {sorted(clash)}")
        found.update(lesson.EXERCISES)
    return found


EXERCISES = _all_exercises()


def find(name):
    if name not in EXERCISES:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(EXERCISES))}")
    return EXERCISES[name]


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
