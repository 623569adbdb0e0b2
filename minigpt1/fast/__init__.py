"""Everything that exists only for speed.

Nothing here changes what the model computes: each fast path is tested equal to the plain
code it replaces (tests/test_fast_paths.py).
May import: layers/ and the base modules (backend, config, ...); never model/ or above.

A fast path replaces a plain function marked @fast_path (backend.py) by its name, on one
device: importing this package registers every one of them. The CUDA kernels register only
where CuPy is installed; they compile on their first call.
"""

from .. import backend
from . import (  # noqa: F401
    adamw,
    attention,
    cross_entropy,
    decode,
    embedding,
    gelu,
    layernorm,
    products,
)

if backend.cupy is not None:
    from . import cuda_kernels  # noqa: F401
