"""Run the lessons as a student first opens them, and keep what they print and draw.

    python lessons/execute.py                 # every lesson, outputs written into the notebooks
    python lessons/execute.py 03_attention    # one lesson (or several)

Each notebook runs top to bottom in a fresh Jupyter kernel, from lessons/, with the exercises
blank: their checks report "not done yet" and the lesson goes on, so every figure and number is
the library's, never a reference solution's. The outputs are written back into the notebook
with a fingerprint of its code (metadata "minigpt1" -> "code_sha256"), which the tests compare
with the code, so a notebook whose code changed after its outputs were made is caught. Each
lesson's wall time and peak memory (of its kernel) are printed: lessons/README.md lists them.
"""

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parent


def code_fingerprint(notebook):
    """sha256 of the notebook's code cells, in order: what its outputs were made from."""
    code = "\0".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def execute_in_place(path):
    """Run one notebook blank and write it back with its outputs (this process's children
    are its kernel, so their peak memory is the lesson's)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    os.environ["MINIGPT1_SOLUTIONS"] = "0"  # the kernel inherits it: every exercise blank
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend: figures become outputs
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(LESSONS)}})
    client.execute()
    notebook.metadata["minigpt1"] = {"code_sha256": code_fingerprint(notebook)}
    partial = path.with_name(f".{path.name}.partial")
    nbformat.write(notebook, partial)
    partial.replace(path)  # never half a notebook: written beside it, then swapped in


def run_one(path):
    """Seconds to run one lesson, in a process of its own (so its memory is its own)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--in-place", str(path)], check=True)
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson names, e.g. 03_attention (default: "
                        "all)")
    parser.add_argument("--in-place", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_place:
        execute_in_place(args.in_place)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        print(f"{args.in_place.stem}: peak memory of its kernel {peak_mb:.0f} MB")
        return 0
    every = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    chosen = [p for p in every if not args.lessons or p.stem in args.lessons]
    unknown = set(args.lessons) - {p.stem for p in every}
    if unknown:
        parser.error(f"no lesson named {', '.join(sorted(unknown))}; the lessons are "
                     f"{', '.join(p.stem for p in every)}")
    for path in chosen:
        print(f"{path.stem}: running ...", flush=True)
        print(f"{path.stem}: {run_one(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
