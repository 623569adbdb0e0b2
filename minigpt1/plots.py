"""Figures for training runs, experiments and lessons: loss curves, learning rates, attention
maps, bars and lines with error bars.

Every function draws on its own matplotlib Figure with the Agg canvas, so nothing here
touches pyplot, opens a window or changes the backend of a notebook that imports us. Each
one writes a PNG atomically (temporary file in the same folder, then rename: a reader never
sees half an image), creates missing parent folders, and returns the path it wrote.

Sizes are for a class looking at a projector: 8 x 5 inches at 120 dpi (960 x 600 pixels),
12-point text, a title, axis labels with units, a legend and a light grid.
"""

import json
import math
import os
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .backend import to_numpy
from .fileio import atomic_path

FIGSIZE = (8, 5)  # inches; times DPI gives 960 x 600 pixels
DPI = 120
PANEL = 3  # inches per attention panel; the colorbar and titles take one more inch each way
MAX_ROWS, MAX_COLS = 4, 6  # at most 24 attention panels: beyond that nothing is readable
RC = {"font.size": 12, "axes.titlesize": 14, "axes.labelsize": 12, "legend.fontsize": 11}
REQUIRED_KEYS = ("step", "loss", "lr")

# Byte-level BPE (GPT-2's, our "bytes" mode) writes each byte as one printable character: the
# printable Latin-1 bytes as themselves, the 68 others (space, newline, the controls, ...) as
# the characters from U+0100 on, in byte order, so a space is "Ġ" and a newline "Ċ". Figures
# sit below the tokenizer, so they keep this rule of their own to read pieces back.
PRINTABLE_BYTES = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
BYTE_OF_CHAR = {chr(b): b for b in PRINTABLE_BYTES} | {
    chr(0x100 + k): b for k, b in enumerate(sorted(set(range(256)) - set(PRINTABLE_BYTES)))}
VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥"}  # whitespace drawn as a mark a reader can see


def read_metrics(path):
    """The records of a metrics JSONL file: one JSON object per line, blank lines skipped.

    Each record holds at least `step`, `loss` and `lr`; evaluation steps add `val_loss` and
    maybe `val_bpc` (bits per character) or `val_bpb` (per byte). A malformed line raises
    ValueError naming the file and the line number, except a last line without its newline:
    a run still writing (or killed mid-write) leaves one, and it is skipped.
    """
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or not line.endswith("\n"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({err})") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {line!r}")
            missing = [key for key in REQUIRED_KEYS if key not in record]
            if missing:
                raise ValueError(f"{path}, line {lineno}: missing {', '.join(missing)}")
            records.append(record)
    return records


def plot_losses(metrics, out_path, title=None):
    """Training loss (raw and smoothed) and validation loss against step.

    `metrics` is a list of records from read_metrics, or the path of the JSONL file.
    """
    metrics = _as_metrics(metrics)
    steps = [m["step"] for m in metrics]
    losses = [m["loss"] for m in metrics]
    with _figure(out_path) as fig:
        ax = fig.add_subplot()
        # The raw loss of one batch is noisy; a thin line keeps it visible without hiding
        # the trend, which the smoothed line carries.
        ax.plot(steps, losses, lw=0.8, alpha=0.4, color="C0", label="training loss (per batch)")
        ax.plot(steps, _ema(losses), lw=2, color="C0", label="training loss (moving average)")
        evals = [m for m in metrics if "val_loss" in m]
        if evals:
            ax.plot([m["step"] for m in evals], [m["val_loss"] for m in evals], "o-",
                    color="C1", lw=2, label="validation loss")
        for key, unit in (("val_bpc", "bits/char"), ("val_bpb", "bits/byte")):
            # Bits per character (or byte) do not depend on the tokenizer, so runs with
            # different vocabularies compare on this one number; an invisible line puts
            # the last one in the legend.
            last = next((m for m in reversed(metrics) if key in m), None)
            if last is not None:
                ax.plot([], [], " ", label=f"val {last[key]:.2f} {unit} at step {last['step']}")
        ax.set(title=title or "Loss during training", xlabel="step (optimizer updates)",
               ylabel="loss (nats per token)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    return Path(out_path)


def plot_lr(metrics, out_path):
    """The learning rate that was used at each logged step (records or a JSONL path)."""
    metrics = _as_metrics(metrics)
    with _figure(out_path) as fig:
        ax = fig.add_subplot()
        _draw_lr(ax, [m["step"] for m in metrics], [m["lr"] for m in metrics],
                 "Learning rate during training")
    return Path(out_path)


def plot_schedule(schedule_fn, total_steps, out_path, title=None):
    """Any schedule `schedule_fn(step) -> lr` for step = 0, 1, ..., total_steps.

    For lessons, before training: e.g. `lambda s: warmup_cosine(s, 2.5e-4, 2000, 100_000)`.
    """
    steps = list(range(total_steps + 1))
    lrs = [schedule_fn(step) for step in steps]
    with _figure(out_path) as fig:
        _draw_lr(fig.add_subplot(), steps, lrs, title or "Learning-rate schedule")
    return Path(out_path)


def plot_attention(maps, tokens, out_path, layers=None, heads=None, title=None):
    """A grid of attention maps: one row per layer, one column per head.

    maps: one array per layer of shape (nh, T, T) or (1, nh, T, T), probabilities with the
    queries as rows and the keys as columns. tokens: the T token pieces, the tick labels,
    drawn readably (readable_tokens: "Ġthe" as "␣the", "Ċ" as "↵").
    layers, heads: indices to show (default all). At most 4 x 6 panels are drawn; the first
    ones are kept and the title says what was left out.
    """
    maps = [_squeeze_batch(to_numpy(m), i) for i, m in enumerate(maps)]
    if not maps:
        raise ValueError("plot_attention: no attention maps (expected one array per layer)")
    nh, T = maps[0].shape[:2]
    if any(m.shape != (nh, T, T) for m in maps):
        raise ValueError(f"plot_attention: layers differ in shape: {[m.shape for m in maps]}")
    if len(tokens) != T:
        raise ValueError(f"plot_attention: maps are over T={T} positions but {len(tokens)} "
                         "tokens were given")
    layers = _select(layers, len(maps), "layer")
    heads = _select(heads, nh, "head")
    shown_layers, shown_heads = layers[:MAX_ROWS], heads[:MAX_COLS]
    rows, cols = len(shown_layers), len(shown_heads)
    # A single panel gets the usual 8 x 5 figure; a grid grows by PANEL inches per panel.
    figsize = (max(FIGSIZE[0], cols * PANEL + 1), max(FIGSIZE[1], rows * PANEL + 1))
    heading = title or "Attention (row: query attends to column: key)"
    if len(shown_layers) < len(layers) or len(shown_heads) < len(heads):
        heading += (f"\nshowing {rows} of {len(layers)} layers, {cols} of {len(heads)} heads"
                    " (choose with layers=, heads=)")
    labels = [_tick_label(piece) for piece in readable_tokens(tokens)]
    panel = min(figsize[0] / cols, figsize[1] / rows)  # inches per panel, roughly
    with _figure(out_path, figsize) as fig:
        axes = fig.subplots(rows, cols, squeeze=False)
        for r, layer in enumerate(shown_layers):
            for c, head in enumerate(shown_heads):
                ax = axes[r, c]
                image = ax.imshow(maps[layer][head], cmap="viridis", vmin=0.0, vmax=1.0)
                ax.set_title(f"layer {layer}, head {head}", fontsize=11)
                # Tick labels on the outer panels only: the inner ones would repeat them.
                # (Not sharex/sharey: with many panels, shared limits make drawing slow.)
                _token_ticks(ax, labels, panel, bottom=r == rows - 1, left=c == 0)
        for ax in axes[-1]:
            ax.set_xlabel("key (attended to)")
        for ax in axes[:, 0]:
            ax.set_ylabel("query (attending)")
        fig.colorbar(image, ax=axes, label="attention probability", shrink=0.8)
        fig.suptitle(heading)
    return Path(out_path)


def plot_bars(table, out_path, title=None, ylabel=None, errors=None):
    """A grouped bar chart from {group: {series: value}}, e.g. {task: {variant: accuracy}}.

    errors: the same shape, {group: {series: e}}: an error bar from value - e to value + e
    (e.g. a 95% interval's half width); a missing or NaN e draws none. A series missing from a
    group leaves a gap in that group.
    """
    if not table:
        raise ValueError("plot_bars: the table is empty")
    groups = list(table)
    # Series in the order they first appear, so the caller's order is the legend's order.
    series = list(dict.fromkeys(name for row in table.values() for name in row))
    width = 0.8 / len(series)  # the bars of one group fill 80% of its slot
    x = np.arange(len(groups))
    with _figure(out_path) as fig:
        ax = fig.add_subplot()
        for i, name in enumerate(series):
            values = [table[g].get(name, np.nan) for g in groups]
            offset = (i - (len(series) - 1) / 2) * width  # centre the bars on the group
            yerr = None if errors is None else [errors.get(g, {}).get(name, np.nan)
                                                for g in groups]
            bars = ax.bar(x + offset, values, width, yerr=yerr, capsize=4, label=str(name))
            # each value is written above its bar, or above its error bar when it has one
            reach = np.zeros(len(groups)) if yerr is None else np.nan_to_num(np.array(yerr))
            for bar, value, top in zip(bars, values, np.array(values) + reach, strict=True):
                if np.isfinite(value):
                    ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, top),
                                xytext=(0, 2), textcoords="offset points", ha="center",
                                va="bottom", fontsize=9)
        ax.set_xticks(x, [str(g) for g in groups])
        ax.set(title=title or "", ylabel=ylabel or "value")
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)  # the grid behind the bars, not over them
        ax.legend()
    return Path(out_path)


def plot_lines(lines, out_path, title=None, xlabel=None, ylabel=None, references=None,
               reference_label="chance"):
    """One line per series against an integer x (layers, updates), with error bars.

    lines: {name: (x, y)} or {name: (x, y, e)}, e an error bar's half width at each point
    (NaN: none). references: {name: y}, a dashed horizontal line in the colour of line `name`
    (each task's chance level, say), all of them one legend entry, `reference_label`.
    """
    if not lines:
        raise ValueError("plot_lines: no lines to draw")
    with _figure(out_path) as fig:
        ax = fig.add_subplot()
        for i, (name, (x, y, *e)) in enumerate(lines.items()):
            colour = f"C{i % 10}"
            ax.errorbar(x, y, yerr=e[0] if e else None, fmt="o-", color=colour, capsize=4,
                        lw=2, label=str(name))
            if references and name in references:
                ax.axhline(references[name], color=colour, ls="--", lw=1.2, alpha=0.8)
        if references:
            ax.plot([], [], "--", color="grey", label=reference_label)  # one entry for all
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=title or "", xlabel=xlabel or "", ylabel=ylabel or "value")
        ax.grid(True, alpha=0.3)
        ax.legend()
    return Path(out_path)


@contextmanager
def _figure(out_path, figsize=FIGSIZE):
    """Yield a fresh Figure on an Agg canvas; when the block ends, save it atomically as PNG.

    rc_context makes the larger fonts apply to this figure only: the caller's settings are
    restored on exit, even if drawing fails (and then nothing is written).
    """
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        with atomic_path(out_path) as tmp:
            # The temporary name does not end in .png, so the format is given explicitly.
            fig.savefig(tmp, format="png", dpi=DPI)


def _as_metrics(metrics):
    """Accept the records themselves or the path of the JSONL file that holds them."""
    if isinstance(metrics, (str, os.PathLike)):
        metrics = read_metrics(metrics)
    if not metrics:
        raise ValueError("no metrics to plot (the list or file is empty)")
    return metrics


def _ema(values, beta=0.9):
    """Exponential moving average with bias correction, so it starts at the first value.

    Without the correction the average starts at 0 and climbs for ~1/(1-beta) steps. A
    non-finite value (a diverged step) is skipped rather than poisoning every later point.
    """
    smoothed, avg, weight = [], 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            avg = beta * avg + (1 - beta) * value
            weight = beta * weight + (1 - beta)
        smoothed.append(avg / weight if weight else math.nan)
    return smoothed


def _draw_lr(ax, steps, lrs, title):
    """The learning-rate curve shared by plot_lr and plot_schedule, with its peak marked."""
    ax.plot(steps, lrs, lw=2, label="learning rate")
    peak = int(np.argmax(lrs))
    ax.plot(steps[peak], lrs[peak], "o", color="C3",
            label=f"peak {lrs[peak]:.3g} at step {steps[peak]}")
    # Learning rates are like 2.5e-4: powers of ten in the axis offset keep the ticks short.
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set(title=title, xlabel="step (optimizer updates)", ylabel="learning rate")
    ax.grid(True, alpha=0.3)
    ax.legend()


def _squeeze_batch(m, layer):
    """(nh, T, T) from (nh, T, T) or (1, nh, T, T), what GPT.attention_maps returns for B=1."""
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"plot_attention: layer {layer} map has shape {m.shape}; expected "
                         "(nh, T, T) or (1, nh, T, T)")
    return m


def _select(indices, n, what):
    """The indices to show (all by default), checked against the n that exist."""
    indices = list(range(n)) if indices is None else list(indices)
    bad = [i for i in indices if not 0 <= i < n]
    if bad or not indices:
        raise ValueError(f"plot_attention: {what} indices {indices} not all in 0..{n - 1}")
    return indices


def readable_tokens(pieces):
    """Token pieces as a reader would write them, whitespace made visible.

    Byte-level pieces ("Ġthe", "Ċ") are read back into text (" the", "\\n"): when every
    character is one of the byte alphabet's and their bytes, joined, are UTF-8. A piece that
    holds part of a character shows its bytes ("\\xc3"). Other pieces, like GPT-1's
    "cat</w>", stay as they are. Then space, newline and tab become ␣, ↵ and ⇥, and any other
    control character its code ("\\x0c").
    """
    joined = "".join(pieces)
    byte_level = all(c in BYTE_OF_CHAR for c in joined) and _is_utf8(_piece_bytes(joined))
    texts = [_piece_bytes(p).decode("utf-8", errors="backslashreplace") if byte_level else p
             for p in pieces]
    return ["".join(_visible(c) for c in text) for text in texts]


def _piece_bytes(piece):
    return bytes(BYTE_OF_CHAR[c] for c in piece)


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _visible(char):
    if char in VISIBLE:
        return VISIBLE[char]
    return f"\\x{ord(char):02x}" if unicodedata.category(char) == "Cc" else char


def _tick_label(piece, width=8):
    """A (readable) token piece fit for a tick label: short, and not read as math."""
    if len(piece) > width:
        piece = piece[: width - 1] + "…"
    # Matplotlib reads text between two $ signs as LaTeX math; an escaped $ is a plain one.
    return piece.replace("$", r"\$")


def _token_ticks(ax, labels, panel_inches, bottom, left):
    """Token pieces as tick labels (on the bottom / left side if asked); every k-th one when
    they would overlap: a 7-point label needs about a tenth of an inch.
    """
    k = math.ceil(len(labels) / max(1, int(10 * panel_inches)))
    ticks = range(0, len(labels), k)
    shown = [labels[i] for i in ticks]
    ax.set_xticks(ticks, shown if bottom else [], rotation=90, fontsize=7)
    ax.set_yticks(ticks, shown if left else [], fontsize=7)
