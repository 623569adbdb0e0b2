"""The lessons: every notebook runs top to bottom, blank and with the solutions, its numbers
cannot go stale, and it is committed with the outputs of its current code.

Each notebook runs end to end in a Jupyter kernel twice, from a copy of lessons/ (the
notebooks and their checks/) whose ../data is the project's data folder, so its runs/ stay out
of the checkout: blank, as a student first opens it (every check reports "not done yet" and the
lesson goes on to its last cell), and with the reference solutions filled in
(MINIGPT1_SOLUTIONS=1: every check says "correct"). Every number the prose states must come out
of the blank run (its code or its outputs). The committed outputs come from
`python lessons/execute.py`, which fingerprints the code they were made from.
"""

import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from setuptools.config.pyprojecttoml import read_configuration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lessons"))
from execute import code_fingerprint  # noqa: E402  (lessons/execute.py)

import checks  # noqa: E402  (lessons/checks, as a notebook imports it)

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
def test_lesson_is_committed_with_the_outputs_of_its_code(path):
    notebook = read(path)
    rerun = f"run `python lessons/execute.py {path.stem}` and commit the notebook it writes"
    made_from = notebook.metadata.get("minigpt1", {}).get("code_sha256")
    assert made_from == code_fingerprint(notebook), (
        f"{path.name}: its outputs were made from other code (or it has none): {rerun}")
    cells = code_cells(notebook)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), (
        f"{path.name}: not run top to bottom in one go: {rerun}")
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} holds an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"


def readme_row(path):
    """The row of lessons/README.md's table that lists this lesson."""
    rows = [line for line in (LESSONS / "README.md").read_text().splitlines()
            if line.startswith(f"| [{path.name}]")]
    assert rows, f"lessons/README.md's table has no row for {path.name}"
    return rows[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_states_its_measured_cost_and_never_redefines_a_layer(path):
    notebook = read(path)
    top = notebook.cells[0].source
    cost = re.search(r"Run time: about (\d+) s\b.*Memory: about ([\d.]+ [MG]B)", top)
    assert notebook.cells[0].cell_type == "markdown" and cost, (
        f"{path.name}: the first cell says 'Run time: about N s ... Memory: about M MB'")
    row = readme_row(path)
    assert f"| {cost[1]} s |" in row and f"| {cost[2]} |" in row, (
        f"{path.name} states {cost[1]} s and {cost[2]}; lessons/README.md measured: {row[-40:]}")
    assert int(cost[1]) <= 120, f"{path.name} takes {cost[1]} s: a lesson runs in 2 minutes"
    redefined = re.compile(rf"^def ({LAYERS})_(forward|backward)\b", re.M)
    for cell in code_cells(notebook):
        assert not redefined.search(cell.source), f"{path.name} redefines a layer: import it"


def test_the_lessons_readme_counts_the_exercises():
    listing = (LESSONS / "README.md").read_text()
    total = re.search(r"(\d+) exercises in all", listing)
    assert total and int(total[1]) == len(checks.EXERCISES), "lessons/README.md: the total"
    for path in NOTEBOOKS:
        count = len(exercise_names(read(path)))
        assert readme_row(path).split(" | ")[2] == str(count), (
            f"lessons/README.md: {path.name} has {count} exercises")


def exercise_names(notebook):
    """The exercises a notebook's check cells name, in order."""
    return [m.group(1) for c in code_cells(notebook, "check")
            for m in re.finditer(r"check\(\s*[\"'](\w+)[\"']", c.source)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_is_followed_by_its_check_and_belongs_to_its_lesson(path):
    notebook = read(path)
    cells = code_cells(notebook)
    tasks = [i for i, c in enumerate(cells) if "exercise" in tags(c)]
    assert len(tasks) >= 4, f"{path.name}: a lesson has at least four exercises"
    for i in tasks:
        assert "check" in tags(cells[i + 1]), f"{path.name}: an exercise's check must follow it"
    names = exercise_names(notebook)
    assert len(names) == len(tasks) == len(set(names)), names
    module = checks.LESSONS[int(path.name[:2]) - 1]
    assert sorted(names) == sorted(module.EXERCISES), (
        f"{path.name} checks {sorted(names)}, {module.__name__} defines {sorted(module.EXERCISES)}")


NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e-?\d+)?")
YEAR = re.compile(r"^(19|20)\d\d$")


def prose_numbers(notebook):
    """Numbers the markdown states: two digits or more, years and cell links left out."""
    found = set()
    for cell in notebook.cells[1:]:  # the first cell's run time and memory: see lessons/README.md
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"\]\([^)]*\)", "]", cell.source)  # links: [text](target) -> [text]
        for number in NUMBER.findall(text):
            digits = number.rstrip(",.").replace(",", "")
            if len(digits.replace(".", "").lstrip("0")) >= 2 and not YEAR.match(digits):
                found.add(number.rstrip(",."))
    return found


def unbacked_numbers(notebook):
    """Prose numbers that neither the code nor its outputs contain (commas ignored)."""
    said = []
    for cell in code_cells(notebook):
        said.append(cell.source)
        for output in cell.outputs:
            said.append(output.get("text", ""))
            said.append(output.get("data", {}).get("text/plain", ""))
    said = "\n".join(said).replace(",", "")
    return sorted(n for n in prose_numbers(notebook)
                  if not re.search(rf"(?<![\d.]){re.escape(n.replace(',', ''))}(?!\d)", said))


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


def run(path, folder, monkeypatch, solutions):
    shutil.copy(path, folder / path.name)
    monkeypatch.setenv("MINIGPT1_SOLUTIONS", "1" if solutions else "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(LESSONS.parent), os.environ.get("PYTHONPATH", "")]))
    client = NotebookClient(read(folder / path.name), timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    return client.execute()  # raises CellExecutionError, with the cell and traceback, on any error


def printed(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_blank_lesson_runs_to_its_last_cell_and_its_prose_numbers_hold(path, lesson_folder,
                                                                        monkeypatch):
    notebook = run(path, lesson_folder, monkeypatch, solutions=False)
    cells = code_cells(notebook)
    assert cells[-1].execution_count == len(cells), f"{path.name} stopped before its end"
    for cell in code_cells(notebook, "check"):
        assert checks.PENDING in printed(cell), f"{path.name}: a blank exercise is not pending"
    unbacked = unbacked_numbers(notebook)
    assert not unbacked, (f"{path.name} states numbers in prose that its code does not print: "
                          f"{unbacked}; print them from a variable, or drop them")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_with_the_solutions_passes_every_check(path, lesson_folder, monkeypatch):
    notebook = run(path, lesson_folder, monkeypatch, solutions=True)
    for cell in code_cells(notebook, "check"):
        assert ": correct" in printed(cell), f"{path.name}: {cell.source!r} did not pass"
