#!/usr/bin/env bash
# Run every GPU (CuPy) test and the GPU training benchmark in one call, on a machine with an
# NVIDIA GPU and CuPy installed. Installs nothing. Results go to $OUT (or ./gpu-results).
#
#   bash tests/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu-results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python - <<'PY' 2>&1 | tee "$out/device.txt"
import cupy, numpy
print("cupy", cupy.__version__, "numpy", numpy.__version__)
print("gpu", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode())
PY
# the tests parametrized over devices, on both; -m gpu selects the CuPy halves. The
# distributed one (2 ranks on the GPU(s) against one process) also needs mpi4py and mpiexec
# (pip install -r requirements-distributed.txt); without them it is skipped and says so.
python -m pytest -q -m gpu -rs -p no:cacheprovider tests 2>&1 | tee "$out/pytest-gpu.txt"
status=${PIPESTATUS[0]}
python benchmarks/compare_torch_gpu.py --preset gpt1 --batch 8 2>&1 | tee "$out/compare-torch-gpu.txt"
for preset in small gpt1; do
  python benchmarks/train_step.py --device cuda --preset "$preset" --batch 8 2>&1 \
    | tee "$out/bench-$preset.txt"
done
exit "$status"
