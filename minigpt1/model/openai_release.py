"""GPT-1's weights as OpenAI released them in 2018 (openai/finetune-transformer-lm, model/):

    params_shapes.json              the shape of every array, in order (146 for GPT-1)
    params_0.npy ... params_9.npy   one flat float32 array, cut into 10 shards
    encoder_bpe_40000.json          the vocabulary, token -> id (40,478 tokens)
    vocab_40000.bpe                 the 40,000 merges: "#version: 0.2", then "left right"

A shard is not a parameter. The original code (train.py) glued the shards back together, cut
the result at the running total of the shapes' sizes and gave each piece its shape:

    flat = concatenate([params_0, ..., params_9])              (116,534,784,) for GPT-1
    arrays = split(flat, cumsum([prod(s) for s in shapes]))    146 arrays, shaped as listed

The arrays come in this order (GPT-1's shapes; the names in the right column are ours,
which are HuggingFace's):

    0            (512, 768)         positions_embed.weight
    1            (40478, 768)       tokens_embed.weight
    then 12 per block, for blocks 0 to 11: BLOCK_ORDER below, e.g. h{i}/attn/c_attn/w
                 (1, 768, 2304)     h.{i}.attn.c_attn.weight

Each `w` of a block is the kernel of a 1x1 convolution, (1, in, out): without its leading 1
it is (in, out), the layout of HuggingFace's Conv1D and of our linear layers, so nothing is
transposed. LayerNorm's gain `g` is our `weight`, its shift `b` our `bias`.

For fine-tuning, the original code stacked the token rows, three fresh rows for _start_,
_delimiter_ and _classify_ (drawn N(0, 0.02) then, never saved) and the first n_ctx position
rows into one matrix `we` of (40478 + 3 + n_ctx, 768). The files hold only the tokens and
the positions, so the model loaded here has 40,478 tokens and no special tokens; fine-tuning
adds them, as the original did.

The files record no hyperparameters. n_ctx, n_embd and vocab_size come from the first two
shapes, n_layer from the number of arrays, and the number of heads from GPT-1's head size of
64 channels (768 = 12 x 64); the rest (dropout 0.1, LayerNorm eps 1e-5, GELU) is GPT-1's.
The tokenizer files are read by minigpt1.tokenizer (gpt1 mode).
"""

import json
import math
from pathlib import Path

import numpy as np

from ..config import GPTConfig, is_integer
from ..errors import FormatError
from .parameters import check_finite, parameter_shapes

SHAPES = "params_shapes.json"
SHARD = "params_{}.npy"
HEAD_SIZE = 64  # channels per attention head in GPT-1 (768 / 12)
# one block's arrays in the release's order: (our name, the original's, as in P's
# parameters_names.json, minus "model/h{i}/" and ":0"); each "w" is a 1x1 convolution's
# kernel (1, in, out)
BLOCK_ORDER = (
    ("attn.c_attn.weight", "attn/c_attn/w"),  # (1, C, 3C)
    ("attn.c_attn.bias", "attn/c_attn/b"),  # (3C,)
    ("attn.c_proj.weight", "attn/c_proj/w"),  # (1, C, C)
    ("attn.c_proj.bias", "attn/c_proj/b"),  # (C,)
    ("ln_1.weight", "ln_1/g"),  # (C,)
    ("ln_1.bias", "ln_1/b"),  # (C,)
    ("mlp.c_fc.weight", "mlp/c_fc/w"),  # (1, C, 4C)
    ("mlp.c_fc.bias", "mlp/c_fc/b"),  # (4C,)
    ("mlp.c_proj.weight", "mlp/c_proj/w"),  # (1, 4C, C)
    ("mlp.c_proj.bias", "mlp/c_proj/b"),  # (C,)
    ("ln_2.weight", "ln_2/g"),  # (C,)
    ("ln_2.bias", "ln_2/b"),  # (C,)
)


def is_release_folder(path):
    """True for a folder laid out like the 2018 release's model/ (it holds params_shapes.json)."""
    return (Path(path) / SHAPES).is_file()


def read_release(path):
    """(GPTConfig, {name: float32 NumPy array}) from a folder of the 2018 release.

    The shapes are checked first, against the GPT-1 they describe, then the number of values
    in the shards against the shapes: a FormatError naming params_shapes.json if either
    disagrees, before any array is cut.
    """
    path = Path(path)
    shapes = read_shapes(path / SHAPES)
    cfg = config_from_shapes(shapes, path / SHAPES)
    layout = release_layout(cfg)
    check_shapes(shapes, layout, cfg, path / SHAPES)
    shards = shard_paths(path)
    flat = read_shards(shards)  # (sum of the sizes,)
    sizes = [math.prod(shape) for _, _, shape in layout]
    if flat.size != sum(sizes):
        raise FormatError(
            f"{path / SHAPES}: its shapes hold {sum(sizes):,} values, but {describe(shards)} "
            f"hold {flat.size:,}; the shards and the shapes are from different models, or a "
            "shard is missing or damaged: download them again"
        )
    pieces = np.split(flat, np.cumsum(sizes)[:-1])  # views of flat, no copy
    by_name = {name: piece for (name, _, _), piece in zip(layout, pieces, strict=True)}
    # in HuggingFace's order; (1, in, out) and (in, out) hold the same values in the same
    # order, so a reshape is all a kernel needs
    params = {name: by_name[name].reshape(shape) for name, shape in parameter_shapes(cfg).items()}
    try:
        check_finite(params, source=describe(shards))
    except ValueError as err:
        raise FormatError(str(err)) from err
    return cfg, params


def read_shapes(path):
    """The list of shapes in params_shapes.json, each a list of positive integers."""
    try:
        shapes = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(shapes, list) or not all(
        isinstance(shape, list) and shape and all(is_integer(n) and n > 0 for n in shape)
        for shape in shapes
    ):
        raise FormatError(f"{path}: expected a JSON list of shapes, each a list of positive "
                          "integers such as [512, 768]")
    return shapes


def config_from_shapes(shapes, path):
    """GPT-1's configuration at the size the shapes give: positions, tokens, 12 per block."""
    blocks, rest = divmod(len(shapes) - 2, len(BLOCK_ORDER))
    if blocks < 1 or rest or len(shapes[0]) != 2 or len(shapes[1]) != 2:
        raise FormatError(
            f"{path}: {len(shapes)} shapes; the release lists the positions (n_ctx, C), the "
            f"tokens (V, C), then {len(BLOCK_ORDER)} arrays per block (146 for GPT-1)"
        )
    (n_ctx, n_embd), (vocab_size, _) = shapes[0], shapes[1]
    if n_embd % HEAD_SIZE:
        raise FormatError(
            f"{path}: the embedding width {n_embd} is not a multiple of GPT-1's head size "
            f"{HEAD_SIZE}, and the release does not record the number of heads"
        )
    return GPTConfig(vocab_size=vocab_size, n_ctx=n_ctx, n_embd=n_embd, n_layer=blocks,
                     n_head=n_embd // HEAD_SIZE)


def release_layout(cfg):
    """[(our name, the original's name, shape in the release)], in the release's order."""
    ours = parameter_shapes(cfg)
    layout = [("positions_embed.weight", "positions", ours["positions_embed.weight"]),
              ("tokens_embed.weight", "tokens", ours["tokens_embed.weight"])]
    for i in range(cfg.n_layer):
        for name, original in BLOCK_ORDER:
            shape = ours[f"h.{i}.{name}"]
            if original.endswith("/w"):  # a 1x1 convolution's kernel
                shape = (1, *shape)
            layout.append((f"h.{i}.{name}", f"h{i}/{original}", shape))
    return layout


def check_shapes(shapes, layout, cfg, path):
    """Each shape of params_shapes.json must be the one its place in the order asks for."""
    for index, (shape, (name, original, expected)) in enumerate(zip(shapes, layout,
                                                                    strict=True)):
        if tuple(shape) != expected:
            raise FormatError(
                f"{path}: array {index} ({original}, our {name}) has shape {tuple(shape)}, "
                f"expected {expected} for n_embd={cfg.n_embd}, n_ctx={cfg.n_ctx}, "
                f"vocab_size={cfg.vocab_size}"
            )


def shard_paths(path):
    """params_0.npy, params_1.npy, ... up to the first number missing."""
    paths = []
    while (path / SHARD.format(len(paths))).is_file():
        paths.append(path / SHARD.format(len(paths)))
    if not paths:
        raise FileNotFoundError(
            f"{path / SHARD.format(0)} not found: the release's weights are params_0.npy to "
            "params_9.npy, in the model/ folder of github.com/openai/finetune-transformer-lm"
        )
    return paths


def describe(shards):
    """The shards' names, for messages: "folder/params_0.npy ... params_9.npy"."""
    return f"{shards[0]} ... {shards[-1].name}" if len(shards) > 1 else str(shards[0])


def read_shards(shards):
    """The shards, read without pickle and glued end to end: one flat float32 array."""
    values = []
    for shard in shards:
        try:
            array = np.load(shard, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise FormatError(f"{shard}: not a readable .npy file ({err})") from err
        if array.ndim != 1 or array.dtype.kind != "f":
            raise FormatError(f"{shard}: holds a {array.dtype} array of shape {array.shape}, "
                              "expected a flat array of floating-point numbers")
        values.append(array)
    return np.concatenate(values).astype(np.float32, copy=False)
