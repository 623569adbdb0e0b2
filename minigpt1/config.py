"""GPTConfig: the shape of a GPT-1 model, with the paper's defaults and named presets."""

import math
from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral, Real


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 40478  # rows of the token embedding (GPT-1: 40,000 merges + 478 base symbols)
    n_ctx: int = 512  # longest sequence; rows of the learned position embedding
    n_embd: int = 768  # C, the width of the residual stream
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads; each has n_embd // n_head channels
    embd_pdrop: float = 0.1  # dropout on the summed token + position embeddings
    attn_pdrop: float = 0.1  # dropout on the attention probabilities
    resid_pdrop: float = 0.1  # dropout on each residual branch before the add
    layer_norm_epsilon: float = 1e-5  # inside the square root, as in the original code
    initializer_range: float = 0.02  # std of the N(0, std) initial weights
    afn: str = "gelu"  # activation: GPT-1's tanh-approximated GELU (the only one implemented)

    def __post_init__(self):
        for name in ("vocab_size", "n_ctx", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not is_integer(value) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head "
                f"gets n_embd // n_head channels; try n_head in {divisors(self.n_embd)}"
            )
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            check_real(self, name, lambda p: 0.0 <= p < 1.0, "in [0, 1)")
        check_real(self, "layer_norm_epsilon", lambda eps: eps > 0, "above 0")
        check_real(self, "initializer_range", lambda std: std >= 0, "of at least 0")
        if self.afn != "gelu":
            raise ValueError(f"afn={self.afn!r} is not implemented; GPT-1 uses 'gelu' (tanh form)")

    @classmethod
    def preset(cls, name, **overrides):
        """A named configuration (see PRESETS), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def is_integer(value):
    """An int (NumPy's too), but not a bool: JSON's `true` must not pass for a 1."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_real(cfg, name, in_range, expected):
    """Refuse a field that is not a finite number, or one outside its range. The type is
    checked first: a string from a hand-edited config.json must not reach a comparison (nor
    NumPy, where it fails as an "unexpected UFuncTypeError"), and NaN compares false both ways."""
    value = getattr(cfg, name)
    number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and in_range(value)):
        raise ValueError(f"GPTConfig.{name} must be a finite number {expected}, got {value!r}")


def divisors(n):
    return [d for d in range(1, min(n, 64) + 1) if n % d == 0]


PRESETS = {
    # tests and lessons: a forward + backward pass in milliseconds
    "tiny": GPTConfig(vocab_size=4096, n_ctx=128, n_embd=128, n_layer=4, n_head=4),
    # the CPU demo, sized by experiment for 10 minutes on a 2-core laptop (README, Results):
    # the tiny body with an 8,192-token BPE (each token ~3.3 characters; 2,048 to 12,288
    # measured, 8,192 and up best). No dropout: a few passes over Shakespeare leave nothing
    # to regularise (GPT-1's 0.1 was for 100 epochs of BooksCorpus), and it slows learning.
    "small": GPTConfig(vocab_size=8192, n_ctx=128, n_embd=128, n_layer=4, n_head=4,
                       embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0),
    # the paper's model: 12 layers, 768 wide, 12 heads, 512 positions, 40,478 tokens
    "gpt1": GPTConfig(),
}
