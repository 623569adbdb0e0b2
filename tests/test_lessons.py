"""The lessons: every notebook runs top to bottom, and its exercises can fail.

Each notebook runs end to end in a Jupyter kernel with the reference solutions filled in
(MINIGPT1_SOLUTIONS=1), from a copy of lessons/ (the notebooks and their checks/) whose ../data
is the project's data folder, so its runs/ stay out of the checkout. Then each exercise cell
is run with the student's blank answer, after the lesson's cells tagged "setup": its check
cell must fail. Notebooks are committed without outputs, which is checked too.
"""

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from setuptools.config.pyprojecttoml import read_configuration

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
DATA = LESSONS.parent / "data"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
LAYERS = "embedding|linear|layernorm|gelu|attention|dropout|cross_entropy|squared_error"


def read(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


def code_cells(notebook, tag=None):
    return [c for c in notebook.cells if c.cell_type == "code" and (tag is None or tag in tags(c))]


def test_lessons_are_numbered_in_reading_order_and_listed():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1)), [p.name for p in NOTEBOOKS]
    listing = (LESSONS / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in listing, f"lessons/README.md does not list {path.name}"


def test_the_wheel_ships_no_checks_and_no_solutions():
    # What pyproject.toml puts in the wheel, as setuptools reads it: minigpt1's packages only.
    config = read_configuration(LESSONS.parent / "pyproject.toml")
    packages = config["tool"]["setuptools"]["packages"]
    assert "minigpt1" in packages, packages
    strays = [p for p in packages
              if p.split(".")[0] != "minigpt1" or p.split(".")[-1] in ("checks", "exercises")]
    assert not strays, f"the wheel would ship the lessons' checks: {strays}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_is_committed_without_outputs(path):
    for cell in code_cells(read(path)):
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name} holds outputs: clear them (Jupyter: Edit > Clear outputs of all "
            f"cells) before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_states_its_cost_and_never_redefines_a_layer(path):
    notebook = read(path)
    top = notebook.cells[0].source
    assert notebook.cells[0].cell_type == "markdown" and "Run time" in top and "Memory" in top
    redefined = re.compile(rf"^def ({LAYERS})_(forward|backward)\b", re.M)
    for cell in code_cells(notebook):
        assert not redefined.search(cell.source), f"{path.name} redefines a layer: import it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_blank_exercises_fail_their_checks(path, monkeypatch):
    notebook = read(path)
    cells = code_cells(notebook)
    setup = "\n".join(c.source for c in code_cells(notebook, "setup"))
    tasks = [i for i, c in enumerate(cells) if "exercise" in tags(c)]
    assert 1 <= len(tasks) <= 3, f"{path.name}: a lesson ends with 1-3 exercises"
    monkeypatch.chdir(LESSONS)
    monkeypatch.syspath_prepend(str(LESSONS))  # a notebook imports `checks` from beside it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for i in tasks:
        check = cells[i + 1]
        assert "check" in tags(check), f"{path.name}: an exercise cell is followed by its check"
        for solutions, must_fail in ((False, True), (True, False)):
            monkeypatch.setenv("MINIGPT1_SOLUTIONS", "1" if solutions else "0")
            namespace = {}
            exec(compile(setup + "\n" + cells[i].source, path.name, "exec"), namespace)
            if must_fail:
                with pytest.raises(AssertionError):
                    exec(compile(check.source, path.name, "exec"), namespace)
            else:
                exec(compile(check.source, path.name, "exec"), namespace)


@pytest.fixture(scope="module")
def lesson_folder(tmp_path_factory):
    """One lessons/ folder for all the runs, as a student has, beside the project's data/
    (the corpus, the shipped model) and docs/ (the results lesson 06 reads)."""
    root = tmp_path_factory.mktemp("course")
    (root / "data").symlink_to(DATA, target_is_directory=True)
    (root / "docs").symlink_to(LESSONS.parent / "docs", target_is_directory=True)
    shutil.copytree(LESSONS / "checks", root / "lessons" / "checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root / "lessons"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_top_to_bottom(path, lesson_folder, monkeypatch):
    shutil.copy(path, lesson_folder / path.name)
    monkeypatch.setenv("MINIGPT1_SOLUTIONS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(LESSONS.parent), os.environ.get("PYTHONPATH", "")]))
    client = NotebookClient(read(lesson_folder / path.name), timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(lesson_folder)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
