"""minigpt1: GPT-1 (Radford et al., 2018) with every forward and backward pass written by hand."""

from . import fast  # noqa: F401  (registers the fast paths: minigpt1/fast/__init__.py)
from .config import PRESETS, GPTConfig
from .model.gpt import GPT
from .model.parameters import parameter_count, parameter_shapes
from .tokenizer.bpe import BPETokenizer

from_pretrained = GPT.from_pretrained  # HuggingFace's name for it, as a function

__all__ = [
    "BPETokenizer",
    "GPT",
    "PRESETS",
    "GPTConfig",
    "from_pretrained",
    "parameter_count",
    "parameter_shapes",
]
