"""minigpt1: GPT-1 (Radford et al., 2018) with every forward and backward pass written by hand."""

# first, before NumPy loads BLAS: under mpiexec, ranks on one machine split its cores
from .fast import cores  # noqa: F401

# isort: split
from . import backend
from .config import PRESETS, GPTConfig
from .model.gpt import GPT, parameter_count, parameter_shapes
from .model.huggingface import from_pretrained
from .tokenizer.bpe import BPETokenizer

backend.keep_freed_memory()  # 1.5x faster training steps on Linux: see backend.py

__all__ = [
    "BPETokenizer",
    "GPT",
    "PRESETS",
    "GPTConfig",
    "from_pretrained",
    "parameter_count",
    "parameter_shapes",
]
