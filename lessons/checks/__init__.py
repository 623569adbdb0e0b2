"""The lessons' exercises: for each, a check, the reference solution and its typical mistakes.

In a lesson, an exercise cell holds the student's answer under a decorator (or a call, for an
answer that is a value), and the cell after it checks that answer:

    @exercise("gelu_derivative")
    def gelu_derivative(x):
        raise NotImplementedError("your code here")

    check("gelu_derivative", gelu_derivative)

`check` prints "correct" when the answer is right and raises AssertionError, with a hint, when
it is wrong. An exercise not done yet (its function still raises NotImplementedError, or its
value is still None) is reported as pending and the lesson goes on, so "Run All" reaches the
end of a blank notebook. While the student's function runs, the library functions that would
answer the exercise are switched off (base.library_unavailable), so calling them is no way out.

With solutions on (`MINIGPT1_SOLUTIONS=1` in the environment, or `show_solutions()`),
`exercise` hands back the reference solution instead of the student's: that is how the test
suite runs every lesson end to end, and how a student who is stuck can see a lesson through.
The solutions are plain Python beside the lessons, one file per lesson (checks/tokenization.py
for 01_tokenization, and so on), to read once you have tried. They are not part of the
minigpt1 library, and the wheel does not ship them.

A notebook runs with lessons/ as its working directory, so it imports this package as
`checks`; from the project's root it is `lessons.checks`.
"""

from . import attention, auxiliary, finetuning, gpu, gradients, pretraining, tokenization
from .base import guarded, show_solutions, solutions_shown

__all__ = ["PENDING", "check", "exercise", "find", "show_solutions", "solutions_shown"]

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


PENDING = "not done yet"


def check(name, answer):
    """Say "correct" when `answer` solves the exercise, and "not done yet" when it is blank.

    A wrong answer raises AssertionError with a hint that names what is off. Nothing is
    returned, so a check cell shows only what it prints."""
    task = find(name)
    try:
        if answer is None:
            raise NotImplementedError
        task.check(guarded(answer, task.library))
    except NotImplementedError:
        print(f"exercise {name!r}: {PENDING}. Write your answer in the exercise cell above and "
              f"run it and this cell again; the lesson goes on without it.")
        return
    print(f"exercise {name!r}: correct")
