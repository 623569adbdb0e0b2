"""The lessons' checks, each on its own: the reference solution passes, a blank answer is
reported as pending (and the lesson goes on), and every typical mistake listed beside the
exercise fails with the hint written for it, among them an answer that calls the library
function the exercise asks the student to write."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lessons"))
import checks  # noqa: E402  (lessons/checks, as a notebook imports it)
from checks.base import SWITCHED_OFF  # noqa: E402

NAMES = sorted(checks.EXERCISES)
MISTAKES = [(name, i) for name in NAMES for i in range(len(checks.find(name).mistakes))]


@pytest.fixture(autouse=True)
def student_mode(monkeypatch):
    monkeypatch.setenv("MINIGPT1_SOLUTIONS", "0")


def blank(task):
    if callable(task.solution):
        def not_yet(*args, **kwargs):
            raise NotImplementedError("your code here")
        return not_yet
    return None


def test_there_are_at_least_35_exercises_nearly_all_code():
    code = [name for name in NAMES if callable(checks.find(name).solution)]
    assert len(NAMES) >= 35, len(NAMES)
    assert len(code) >= 0.8 * len(NAMES), f"{len(code)} of {len(NAMES)} ask for code"


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_solution_passes(name, capsys):
    checks.check(name, checks.find(name).solution)
    assert f"exercise {name!r}: correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_a_blank_answer_is_pending_and_the_lesson_goes_on(name, capsys):
    checks.check(name, blank(checks.find(name)))
    assert checks.PENDING in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_each_check_is_tried_with_typical_mistakes(name):
    task = checks.find(name)
    assert len(task.mistakes) >= 2, f"{name}: list at least two typical wrong answers"
    if task.library:
        assert any(SWITCHED_OFF in m.hint for m in task.mistakes), (
            f"{name}: one mistake should call the library function the exercise asks for")


@pytest.mark.parametrize(("name", "index"), MISTAKES)
def test_a_typical_mistake_fails_with_its_hint(name, index):
    mistake = checks.find(name).mistakes[index]
    with pytest.raises(AssertionError) as failure:
        checks.check(name, mistake.answer)
    assert mistake.hint in str(failure.value), (
        f"{name}, mistake {index}: expected the hint {mistake.hint!r}, got {failure.value}")


@pytest.mark.parametrize("name", NAMES)
def test_the_library_comes_back_after_a_check(name):
    task = checks.find(name)
    before = [(f, sys.modules[f.__module__].__dict__.get(f.__name__)) for f in task.library]
    for mistake in task.mistakes:
        with pytest.raises(AssertionError):
            checks.check(name, mistake.answer)
    after = [(f, sys.modules[f.__module__].__dict__.get(f.__name__)) for f in task.library]
    assert before == after


def test_the_guard_reaches_every_way_of_calling_the_library():
    import minigpt1.layers as layers
    from checks.base import LibraryUnavailable, library_unavailable
    from minigpt1.layers import gelu_forward
    from minigpt1.tokenizer.bpe import BPETokenizer

    notebook = {"gelu_forward": gelu_forward, "layers": layers}  # a student's globals
    ways = [lambda: notebook["gelu_forward"](0.0), lambda: notebook["layers"].gelu_forward(0.0),
            lambda: gelu_forward.plain(0.0), lambda: notebook["gelu_forward"].plain(0.0),
            lambda: BPETokenizer.encode(None, "a")]
    with library_unavailable((gelu_forward, BPETokenizer.encode), notebook):
        for way in ways:
            with pytest.raises(LibraryUnavailable, match=SWITCHED_OFF):
                way()
    assert notebook["gelu_forward"] is gelu_forward is layers.gelu_forward
    assert BPETokenizer.encode.__name__ == "encode" and "blocked" not in repr(BPETokenizer.encode)


@pytest.mark.parametrize("name", [n for n in NAMES if checks.find(n).library])
def test_the_library_function_itself_is_no_answer(name):
    for function in checks.find(name).library:
        with pytest.raises(AssertionError, match=SWITCHED_OFF):
            checks.check(name, function)


def test_the_guard_reaches_tables_of_functions():
    from checks.base import library_unavailable
    from minigpt1.tokenizer import pretokenization

    name, split = next(iter(pretokenization.SPLITTERS.items()))
    with library_unavailable((split,)):
        with pytest.raises(AssertionError, match=SWITCHED_OFF):
            pretokenization.SPLITTERS[name]("a b")
    assert pretokenization.SPLITTERS[name] is split
