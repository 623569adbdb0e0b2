"""GPT-1's parameters by name: their shapes (HuggingFace's state-dict names and order), their
count, GPT-1's initialisation, and the checks that a dict of arrays fits a configuration and
holds only finite numbers."""

from .. import backend
from .block import BLOCK_PARAM_SHAPES


def parameter_shapes(cfg):
    """{name: shape} for every parameter, in HuggingFace's state-dict order."""
    C = cfg.n_embd
    shapes = {"tokens_embed.weight": (cfg.vocab_size, C), "positions_embed.weight": (cfg.n_ctx, C)}
    for i in range(cfg.n_layer):
        for name, shape in BLOCK_PARAM_SHAPES.items():
            shapes[f"h.{i}.{name}"] = shape(C)
    return shapes


def parameter_count(cfg):
    """Number of trainable values; the tied LM head adds none (gpt1 preset: 116,534,784)."""
    total = 0
    for shape in parameter_shapes(cfg).values():
        size = 1
        for n in shape:
            size *= n
        total += size
    return total


def init_params(cfg, seed, device="cpu", dtype="float32"):
    """GPT-1's initialisation: weights N(0, 0.02), biases 0, LayerNorm gains 1.

    Values are drawn in float64 on the host from one seeded generator, so a float32 and a
    float64 model (or a CPU and a GPU model) with the same seed start from the same numbers.
    """
    xp = backend.module_for(device)
    rng = backend.host_rng(seed)
    params = {}
    for name, shape in parameter_shapes(cfg).items():
        if name.endswith(".bias"):
            params[name] = xp.zeros(shape, dtype=dtype)
        elif ".ln_" in name:  # LayerNorm gain
            params[name] = xp.ones(shape, dtype=dtype)
        else:
            weight = rng.normal(0.0, cfg.initializer_range, size=shape)
            params[name] = backend.to_device(weight, device, dtype)
    return params


def check_params(cfg, params, source="params"):
    """Raise a clear error if `params` lacks a tensor, has an extra one, or one is mis-shaped."""
    expected = parameter_shapes(cfg)
    missing = [name for name in expected if name not in params]
    if missing:
        shown = ", ".join(f"{n} {expected[n]}" for n in missing[:5])
        raise ValueError(f"{source}: {len(missing)} tensor(s) missing, e.g. {shown}")
    unexpected = [name for name in params if name not in expected]
    if unexpected:
        raise ValueError(f"{source}: unexpected tensor(s) {unexpected[:5]} for this config")
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise ValueError(
                f"{source}: tensor {name} has shape {tuple(params[name].shape)}, "
                f"expected {shape} for n_embd={cfg.n_embd}, vocab_size={cfg.vocab_size}, "
                f"n_ctx={cfg.n_ctx}"
            )


def check_finite(params, source="params"):
    """Raise a clear error naming the first tensor that holds a NaN or an infinity: one such
    value spreads through every logit, and sampling would print garbage without a word."""
    for name, value in params.items():
        bad = value.size - int(backend.xp_of(value).isfinite(value).sum())
        if bad:
            raise ValueError(f"{source}: tensor {name} holds {bad:,} NaN or infinite value(s) "
                             f"of {value.size:,}; these weights are damaged: get a good copy")
