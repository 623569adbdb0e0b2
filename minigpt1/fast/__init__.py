"""Everything that exists only for speed.

Nothing here changes what the model computes: each fast path is tested equal to the plain
code it replaces (tests/test_fast_paths.py).
May import: layers/ and the base modules (backend, config, ...); never model/ or above.
"""
