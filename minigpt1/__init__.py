"""minigpt1: GPT-1 (Radford et al., 2018) with every forward and backward pass written by hand."""

from .bpe import BPETokenizer
from .config import PRESETS, GPTConfig
from .model import GPT, parameter_count, parameter_shapes
from .pretrained import from_pretrained

__all__ = [
    "BPETokenizer",
    "GPT",
    "PRESETS",
    "GPTConfig",
    "from_pretrained",
    "parameter_count",
    "parameter_shapes",
]
