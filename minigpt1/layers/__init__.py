"""Hand-written layers: each file holds one `*_forward` / `*_backward` pair and its cache.

Size legend used in every file:
    B  batch size            T  sequence length (time)     C  channels (n_embd)
    V  vocabulary size       nh number of heads            hs head size (C // nh)
    N  any number of leading dimensions flattened together

The functions marked @fast_path are the reference math; minigpt1/fast/ may register a faster
version of one (by its name, for the CPU or the GPU), which then runs in its place.

May import: the base modules only (backend); the layers know nothing of the model.
"""

from .attention import attention_backward, attention_forward
from .cross_entropy import (
    cross_entropy_backward,
    cross_entropy_forward,
    position_weights,
    target_log_probs,
)
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .gelu import gelu_backward, gelu_forward
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward, matrix_product
from .squared_error import squared_error_backward, squared_error_forward

__all__ = [
    "attention_backward",
    "attention_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "gelu_backward",
    "gelu_forward",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "matrix_product",
    "position_weights",
    "squared_error_backward",
    "squared_error_forward",
    "target_log_probs",
]
