"""The wheel as a new user gets it: built from the project's files, installed into a fresh
virtual environment with no package index reachable, and run from an empty folder.

The venv sees this interpreter's site-packages (numpy, matplotlib, ... are installed there
already: the point is minigpt1's own files, not re-downloading its dependencies), and the
test checks that `minigpt1` is imported from the venv's copy, never from this checkout.
"""

import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FILES = 8  # the sample corpus's works (minigpt1/corpus/sample/texts)

pytestmark = pytest.mark.slow


def run(command, cwd, env):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory):
    """The environment of a user with no package index: pip refuses to look for packages."""
    home = tmp_path_factory.mktemp("home")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.pop("PYTHONPATH", None)  # nothing may point back at the checkout
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "HOME": str(home), "MINIGPT1_CACHE": str(home / "cache")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, offline_env):
    """A wheel built from a copy of what the package is made of (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "minigpt1", source / "minigpt1",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(source)], cwd=source, env=offline_env)
    (built,) = dist.glob("minigpt1-*.whl")
    return built


def test_wheel_carries_the_sample_corpus_the_license_and_the_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        meta = email.message_from_string(archive.read(metadata).decode())
    texts = [name for name in names
             if name.startswith("minigpt1/corpus/sample/texts/") and name.endswith(".txt")]
    assert len(texts) == SAMPLE_FILES
    assert "minigpt1/corpus/sample/metadata.csv" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    for version in ("3.10", "3.11", "3.12"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    extras = set(meta.get_all("Provides-Extra"))
    assert {"gpu", "gpu-cuda11", "gpu-cuda13", "distributed", "dev", "lessons"} <= extras
    assert meta.get_payload().startswith("# minigpt1")  # the README is the long description


def test_installed_wheel_runs_the_demo_offline_from_an_empty_folder(wheel, offline_env,
                                                                    tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path,
        env=offline_env)
    python, command = venv / "bin" / "python", venv / "bin" / "minigpt1"
    run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], cwd=tmp_path,
        env=offline_env)
    empty = tmp_path / "work"
    empty.mkdir()
    where = run([python, "-c", "import minigpt1; print(minigpt1.__file__)"], cwd=empty,
                env=offline_env)
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout

    output = run([command, "demo", "--minutes", "0.2", "--out", "runs/demo"], cwd=empty,
                 env=offline_env)

    installed_sample = Path(where.strip()).parent / "corpus" / "sample" / "texts"
    assert f"using the small sample corpus in {installed_sample}" in output
    assert "--- after" in output  # it trained, then wrote a sample
    summary = (empty / "runs" / "demo" / "summary.md").read_text()
    bits = float(re.search(r"([\d.]+) bits per byte", summary).group(1))
    assert 0 < bits < 8  # a measured validation loss (8 bits per byte: knowing nothing)
    assert (empty / "runs" / "demo" / "checkpoints" / "index.json").is_file()
