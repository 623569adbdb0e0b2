"""Figures: real PNGs of the promised pixel size, not blank, written atomically."""

import json
import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from minigpt1 import plots
from minigpt1.training.optim import warmup_cosine

STANDARD_PIXELS = (600, 960)  # (height, width) of an 8 x 5 inch figure at 120 dpi


def write_metrics(path, n=60, eval_every=20):
    """A plausible run: a decaying noisy loss, a warm-up learning rate, periodic evaluations."""
    rng = np.random.default_rng(0)
    lines = []
    for step in range(n):
        record = {"step": step, "loss": 3.0 * math.exp(-step / 30) + 1.5 + 0.1 * rng.random(),
                  "lr": warmup_cosine(step, 1e-3, 10, n)}
        if step % eval_every == 0 or step == n - 1:
            record |= {"val_loss": record["loss"] + 0.1, "val_bpc": 2.5 - step / n}
        lines.append(json.dumps(record))
    lines.insert(5, "")  # blank lines are allowed and skipped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_png(path, pixels=STANDARD_PIXELS):
    """Check that `path` is a PNG of `pixels` (height, width) with some contrast; return it."""
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == pixels
    assert image[..., :3].var() > 1e-3, "the image is (almost) one flat colour"
    return image


def causal_maps(n_layer, nh, T, seed=0):
    """Random causal attention probabilities: one (nh, T, T) array per layer, rows sum to 1."""
    rng = np.random.default_rng(seed)
    scores = np.where(np.tril(np.ones((T, T), bool)), rng.normal(size=(n_layer, nh, T, T)), -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    return list(probs / probs.sum(-1, keepdims=True))


def test_read_metrics_skips_blank_lines_and_keeps_values(tmp_path):
    metrics = plots.read_metrics(write_metrics(tmp_path / "metrics.jsonl"))
    assert [m["step"] for m in metrics] == list(range(60))
    assert [m["step"] for m in metrics if "val_loss" in m] == [0, 20, 40, 59]
    assert metrics[10]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("bad, reason", [
    ('{"step": 2, "loss": 1.0', "not valid JSON"),
    ('[2, 1.0, 0.001]', "expected a JSON object"),
    ('{"step": 2, "loss": 1.0}', "missing lr"),
])
def test_read_metrics_names_file_and_line_of_a_bad_record(tmp_path, bad, reason):
    path = tmp_path / "metrics.jsonl"
    good = json.dumps({"step": 1, "loss": 2.0, "lr": 1e-4})
    path.write_text(f"{good}\n\n{bad}\n{good}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=reason) as err:
        plots.read_metrics(path)
    assert f"{path}, line 3" in str(err.value)  # line 3 counts the blank line 2


def test_plot_losses_draws_the_same_from_records_or_from_a_path(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl")
    from_path = plots.plot_losses(path, tmp_path / "a.png", title="run 1")
    from_records = plots.plot_losses(plots.read_metrics(path), tmp_path / "b.png", title="run 1")
    assert from_path == tmp_path / "a.png"
    assert np.array_equal(read_png(from_path), read_png(from_records))


def test_plot_losses_notes_bits_per_character_only_when_logged(tmp_path):
    records = plots.read_metrics(write_metrics(tmp_path / "metrics.jsonl"))
    with_bpc = read_png(plots.plot_losses(records, tmp_path / "bpc.png"))
    for m in records:
        m.pop("val_bpc", None)
    without = read_png(plots.plot_losses(records, tmp_path / "no-bpc.png"))
    assert not np.array_equal(with_bpc, without)  # the legend lost its last line


def test_plot_losses_without_evaluations(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", eval_every=10**9)
    records = [{k: m[k] for k in ("step", "loss", "lr")} for m in plots.read_metrics(path)]
    read_png(plots.plot_losses(records, tmp_path / "loss.png"))


def test_plot_losses_refuses_empty_metrics(tmp_path):
    with pytest.raises(ValueError, match="no metrics"):
        plots.plot_losses([], tmp_path / "loss.png")
    assert list(tmp_path.iterdir()) == []


def test_moving_average_starts_at_the_first_value_and_skips_non_finite():
    smoothed = plots._ema([2.0, 2.0, math.inf, 2.0, 4.0], beta=0.5)
    assert smoothed[:4] == pytest.approx([2.0, 2.0, 2.0, 2.0])
    assert 2.0 < smoothed[4] < 4.0


def test_plot_lr(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl")
    read_png(plots.plot_lr(path, tmp_path / "lr.png"))


def test_plot_schedule_evaluates_every_step_from_0_to_total(tmp_path):
    seen = []

    def schedule(step):
        seen.append(step)
        return warmup_cosine(step, 2.5e-4, 20, 100)

    read_png(plots.plot_schedule(schedule, 100, tmp_path / "schedule.png", title="GPT-1"))
    assert seen == list(range(101))


def test_plot_attention_accepts_a_leading_batch_axis_of_one(tmp_path):
    maps = causal_maps(n_layer=1, nh=1, T=8)  # one panel: the standard figure size
    tokens = ["the", "cat", "$5", "a\nb", "sat", "on", "a-very-long-piece", "mat"]
    plain = plots.plot_attention(maps, tokens, tmp_path / "plain.png")
    batched = plots.plot_attention([m[None] for m in maps], tokens, tmp_path / "batched.png")
    a, b = read_png(plain), read_png(batched)
    assert np.array_equal(a, b)


def test_plot_attention_caps_the_grid_and_honours_a_selection(tmp_path, monkeypatch):
    maps = causal_maps(n_layer=3, nh=2, T=4)
    tokens = list("abcd")
    # A smaller cap than 4 x 6 keeps the test fast; the rule is the same.
    monkeypatch.setattr(plots, "MAX_ROWS", 2)
    monkeypatch.setattr(plots, "MAX_COLS", 1)
    # capped at 2 x 1 panels: 2 * 3 + 1 = 7 inches high (and the standard 8 wide), at 120 dpi
    capped = read_png(plots.plot_attention(maps, tokens, tmp_path / "all.png"), (840, 960))
    # the first layers and heads, chosen explicitly (and so with no note of what was left
    # out): given the capped figure's title, the two must be the same picture
    title = ("Attention (row: query attends to column: key)\n"
             "showing 2 of 3 layers, 1 of 2 heads (choose with layers=, heads=)")
    chosen = read_png(plots.plot_attention(maps, tokens, tmp_path / "chosen.png", title=title,
                                           layers=[0, 1], heads=[0]), (840, 960))
    assert np.array_equal(capped, chosen)
    # one panel: the standard figure
    read_png(plots.plot_attention(maps, tokens, tmp_path / "one.png", layers=[2], heads=[1]))


def test_long_sequences_get_every_kth_tick_label():
    ax = Figure(figsize=plots.FIGSIZE).add_subplot()
    labels = [f"t{i}" for i in range(100)]
    plots._token_ticks(ax, labels, panel_inches=5, bottom=True, left=False)
    # a 5-inch panel holds 50 labels: every second one of 100
    assert list(ax.get_xticks()) == list(range(0, 100, 2))
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["t0", "t2", "t4"]
    assert all(t.get_text() == "" for t in ax.get_yticklabels())


def test_token_pieces_become_short_plain_text_labels():
    assert plots._tick_label("cat</w>") == "cat</w>"
    assert plots._tick_label("a-very-long-piece") == "a-very-…"
    assert plots._tick_label("$5") == r"\$5"


def test_the_byte_alphabet_is_the_tokenizers():
    from minigpt1.tokenizer.files import CHAR_BYTES

    assert plots.BYTE_OF_CHAR == CHAR_BYTES


def test_byte_level_pieces_read_as_text_with_visible_whitespace():
    from minigpt1.tokenizer.bpe import BPETokenizer

    text = "What say you?\nMy lord, été\tis here"
    tokenizer = BPETokenizer.train([text] * 3, vocab_size=270, mode="bytes", progress=False)
    pieces = tokenizer.tokens(text)
    assert "Ġ" in "".join(pieces) and "Ċ" in pieces  # what the labels used to show
    readable = plots.readable_tokens(pieces)
    assert "".join(readable) == "What␣say␣you?↵My␣lord,␣été⇥is␣here"
    # piece by piece, each is the text its id decodes to, whitespace made visible
    for piece, shown in zip(pieces, readable, strict=True):
        decoded = tokenizer.decode([tokenizer.token_to_id(piece)])
        assert shown == decoded.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def test_pieces_that_split_a_character_or_are_not_byte_level():
    assert plots.readable_tokens(["Ã", "©", "Ġa"]) == ["\\xc3", "\\xa9", "␣a"]  # é in two
    # GPT-1's pieces: "é" alone is no UTF-8 byte string, so none of them is read as bytes
    assert plots.readable_tokens(["caf", "é</w>", "\n</w>"]) == ["caf", "é</w>", "↵</w>"]
    assert plots.readable_tokens(["Ġ", "\x0c"]) == ["Ġ", "\\x0c"]  # \x0c: not the alphabet


def test_attention_labels_are_readable_and_every_glyph_is_drawn(tmp_path, recwarn,
                                                                monkeypatch):
    pieces = ["What", "Ġsay", "Ġyou", "Ċ", "\u0109", "ĠÃ©"]  # Ġ space, Ċ newline, ĉ tab, é
    drawn, real = [], plots._token_ticks
    monkeypatch.setattr(plots, "_token_ticks",
                        lambda ax, labels, *args, **kw: drawn.append(labels) or real(
                            ax, labels, *args, **kw))
    read_png(plots.plot_attention(causal_maps(1, 1, 6), pieces, tmp_path / "attention.png"))
    assert drawn == [["What", "␣say", "␣you", "↵", "⇥", "␣é"]]
    assert not [w for w in recwarn if "missing from" in str(w.message)]  # no glyph missing


@pytest.mark.parametrize("maps, tokens, message", [
    (causal_maps(2, 2, 5), list("abcd"), "T=5 positions but 4 tokens"),
    (causal_maps(1, 2, 5) + causal_maps(1, 2, 4), list("abcde"), "layers differ"),
    ([np.ones((2, 2, 5, 5))], list("abcde"), "expected"),
    ([], [], "no attention maps"),
])
def test_plot_attention_rejects_inconsistent_inputs(tmp_path, maps, tokens, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_attention(maps, tokens, tmp_path / "attention.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_attention_rejects_out_of_range_indices(tmp_path):
    with pytest.raises(ValueError, match=r"head indices \[0, 2\] not all in 0..1"):
        plots.plot_attention(causal_maps(1, 2, 3), list("abc"), tmp_path / "a.png", heads=[0, 2])


def test_plot_bars_with_a_missing_value(tmp_path):
    table = {"SST-2": {"full": 0.91, "no aux LM": 0.89},
             "RTE": {"full": 0.56, "no aux LM": 0.54, "no pre-training": 0.50}}
    read_png(plots.plot_bars(table, tmp_path / "bars.png", title="Ablation", ylabel="accuracy"))
    with pytest.raises(ValueError, match="empty"):
        plots.plot_bars({}, tmp_path / "empty.png")


def test_plot_bars_draws_error_bars_where_given(tmp_path):
    table = {"genre": {"L3": 66.0, "L2": 67.0}, "average": {"L3": 50.0, "L2": 51.0}}
    errors = {"genre": {"L3": 20.0, "L2": float("nan")}}  # one bar with an error bar
    plain = read_png(plots.plot_bars(table, tmp_path / "plain.png"))
    with_errors = read_png(plots.plot_bars(table, tmp_path / "errors.png", errors=errors))
    assert not np.array_equal(plain, with_errors)
    nan_only = {"genre": {"L3": float("nan"), "L2": float("nan")}}
    assert np.array_equal(plain, read_png(plots.plot_bars(table, tmp_path / "nan.png",
                                                          errors=nan_only)))


def test_plot_lines_with_error_bars_and_reference_lines(tmp_path):
    lines = {"genre": ([0, 1, 2], [40.0, 55.0, 66.0], [5.0, 4.0, float("nan")]),
             "next-line": ([0, 1, 2], [25.0, 30.0, 34.0])}
    plain = read_png(plots.plot_lines(lines, tmp_path / "lines.png", title="Transfer",
                                      xlabel="blocks", ylabel="accuracy (%)"))
    chance = read_png(plots.plot_lines(lines, tmp_path / "chance.png", title="Transfer",
                                       xlabel="blocks", ylabel="accuracy (%)",
                                       references={"genre": 33.3, "next-line": 25.0}))
    assert not np.array_equal(plain, chance)
    with pytest.raises(ValueError, match="no lines"):
        plots.plot_lines({}, tmp_path / "empty.png")


def test_saving_creates_parent_folders_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "runs" / "1" / "lr.png"
    assert plots.plot_schedule(lambda s: 1e-3, 10, out) == out
    assert [p.name for p in out.parent.iterdir()] == ["lr.png"]


def test_a_failed_save_keeps_the_previous_figure_and_leaves_no_temporary_file(
        tmp_path, monkeypatch):
    out = plots.plot_schedule(lambda s: 1e-3, 10, tmp_path / "lr.png")
    before = out.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        fname.write_bytes(b"\x89PNG half an image")  # the crash happens mid-write
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_schedule(lambda s: 2e-3, 10, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["lr.png"]


def test_an_unwritable_destination_raises(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError):
        plots.plot_lr([{"step": 0, "loss": 1.0, "lr": 1e-3}], blocker / "lr.png")


def test_plotting_leaves_the_callers_matplotlib_settings_alone(tmp_path):
    # the caller's own setting, different from the 12-point text of our figures
    with matplotlib.rc_context({"font.size": 7}):
        before = dict(matplotlib.rcParams)
        plots.plot_bars({"a": {"x": 1.0}}, tmp_path / "bars.png")
        assert dict(matplotlib.rcParams) == before


def test_read_metrics_skips_a_last_line_still_being_written(tmp_path):
    path = tmp_path / "metrics.jsonl"
    good = json.dumps({"step": 1, "loss": 2.0, "lr": 1e-4})
    path.write_text(f'{good}\n{{"step": 2, "lo', encoding="utf-8")  # killed mid-line
    assert [m["step"] for m in plots.read_metrics(path)] == [1]
