"""FLOPs and memory estimates, checked against the model's own shapes and allocations."""

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, parameter_shapes
from minigpt1.cli import main
from minigpt1.fast.batch_threads import blas_threads
from minigpt1.model.parameters import parameter_count
from minigpt1.training.estimate import (
    check_fits,
    describe,
    estimate_memory,
    flops_per_token,
    step_shards,
)
from minigpt1.training.lm_objective import batch_loss_and_grads
from minigpt1.training.update import batch_shards
from tests.test_threads import on_threads


def matmul_flops_from_shapes(cfg, T):
    """Forward FLOPs per token read off the weight shapes: 2 * in * out per linear, the tied
    head 2 C V, and attention's two (T x hs) products per head: 4 T C per layer."""
    shapes = parameter_shapes(cfg)
    linears = sum(2 * shape[0] * shape[1] for name, shape in shapes.items()
                  if name.startswith("h.") and name.endswith(".weight") and len(shape) == 2)
    return linears + 2 * cfg.n_embd * cfg.vocab_size + cfg.n_layer * 4 * T * cfg.n_embd


@pytest.mark.parametrize("name", ["tiny", "small", "gpt1"])
@pytest.mark.parametrize("T", [None, 64])
def test_flops_match_the_weight_shapes(name, T):
    cfg = GPTConfig.preset(name)
    flops = flops_per_token(cfg, T)
    assert flops.forward == matmul_flops_from_shapes(cfg, T or cfg.n_ctx)
    assert flops.training == 3 * flops.forward


def test_training_is_six_flops_per_matrix_parameter_plus_attention():
    # the usual rule of thumb, 6 N: N counts the blocks' matrices and the tied head, not the
    # biases, LayerNorms or position table, which no matrix product uses
    cfg = GPTConfig.preset("gpt1")
    body_and_head = 12 * cfg.n_layer * cfg.n_embd**2 + cfg.n_embd * cfg.vocab_size
    attention = 12 * cfg.n_layer * cfg.n_ctx * cfg.n_embd
    assert flops_per_token(cfg).training == 6 * body_and_head + attention


def test_parameter_memory_is_exact():
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, seed=0)
    memory = estimate_memory(cfg, 2, cfg.n_ctx)
    assert memory["parameters"] == sum(p.nbytes for p in model.params.values())
    assert memory["adam moments"] == 2 * memory["parameters"]


@pytest.mark.parametrize("batch, micro, threads", [(4, 4, 1), (4, 4, 2), (8, 8, 2), (8, 2, 2),
                                                    (16, 1, 2)])
def test_activation_memory_is_close_to_what_a_threaded_step_allocates(batch, micro, threads):
    """The shards of a step (two per micro-batch, `threads` at a time), their gradient sets
    and the pairwise sum's waiting ones: the estimate against tracemalloc's peak."""
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, seed=0)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(batch, cfg.n_ctx + 1))

    def step():
        return batch_loss_and_grads(model, ids, seed=0, step=0, micro_batch_size=micro)

    def warm_then_trace():
        step()  # warm caches
        tracemalloc.start()
        try:
            return step()[1], tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    grads, peak = on_threads(threads, warm_then_trace)
    memory = estimate_memory(cfg, micro, cfg.n_ctx, batch, threads)
    assert memory["parameters"] == sum(g.nbytes for g in grads.values())
    ratio = (memory["activations"] + memory["gradients"]) / peak
    assert 0.75 < ratio < 1.25, f"estimate / measured peak = {ratio:.2f}"


def test_describe_states_the_best_case_speed():
    cfg = GPTConfig.preset("small")
    lines = describe(cfg, batch_size=8, peak_gflops=100.0)
    best = 100e9 / flops_per_token(cfg).training
    assert f"at most {best:,.0f} training tokens/s" in lines[-1]
    assert f"{8 * 128 / best * 1000:,.0f} ms" in lines[-1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minigpt1", "estimate", *args],
                          capture_output=True, text=True)


def test_cli_prints_each_preset():
    result = run_cli("--preset", "tiny", "--preset", "gpt1", "--no-measure")
    assert result.returncode == 0, result.stderr
    assert "1,333,760 parameters" in result.stdout and "116,534,784 parameters" in result.stdout


def test_cli_rejects_an_unknown_preset():
    result = run_cli("--preset", "huge", "--no-measure")
    assert result.returncode != 0 and "unknown preset 'huge'" in result.stderr


def estimate(capsys, *args):
    """(status, stdout, stderr) of `estimate --no-measure ARGS`, in this process."""
    status = main(["estimate", "--no-measure", *args])
    out, err = capsys.readouterr()
    return status, out, err


def first_line(cfg):
    """describe's first line for cfg, from the config and an independent parameter count."""
    return (f"{cfg.n_layer} layers, C={cfg.n_embd}, {cfg.n_head} heads, T={cfg.n_ctx}, "
            f"V={cfg.vocab_size:,}: {parameter_count(cfg):,} parameters")


def test_cli_applies_the_size_flags_over_each_preset(capsys):
    status, out, _ = estimate(capsys, "--preset", "tiny", "--preset", "small",
                              "--n-layer", "2", "--n-ctx", "64")
    assert status == 0
    for name in ("tiny", "small"):
        cfg = GPTConfig.preset(name, n_layer=2, n_ctx=64)
        assert f"{name} with n_layer=2, n_ctx=64\n  {first_line(cfg)}\n" in out
        forward = flops_per_token(cfg).forward / 1e6
        assert f"{forward:,.1f} MFLOP per token forward" in out
    assert out.count("per update of 8 x 64") == 2  # --batch-size: pretrain's default, 8


def test_cli_reads_a_config_file_under_the_flags(tmp_path, capsys):
    config = tmp_path / "narrow.json"
    config.write_text(json.dumps({"n_layer": 3, "n_embd": 64, "n_head": 2}))
    status, out, _ = estimate(capsys, "--preset", "tiny", "--config", str(config),
                              "--n-layer", "1", "--vocab-size", "300")
    cfg = GPTConfig.preset("tiny", n_layer=1, n_embd=64, n_head=2, vocab_size=300)
    assert status == 0 and f"  {first_line(cfg)}\n" in out


def test_the_old_spellings_give_the_same_estimate_with_a_note(capsys):
    _, new, quiet = estimate(capsys, "--preset", "tiny", "--batch-size", "4", "--n-ctx", "64")
    _, old, noted = estimate(capsys, "--preset", "tiny", "--batch", "4", "--seq", "64")
    assert old == new and "GFLOP per update of 4 x 64" in new and quiet == ""
    assert "--batch is now --batch-size" in noted and "--seq is now --n-ctx" in noted


def test_a_size_the_model_refuses_is_a_usage_error_naming_the_flags(capsys):
    status, out, err = estimate(capsys, "--n-embd", "100", "--n-head", "3")
    assert status == 2 and out == ""
    assert "must be divisible by n_head (3)" in err
    assert "change --n-embd, --n-head (or --config)" in err


def test_the_estimate_counts_the_shards_a_step_runs():
    for batch in range(1, 20):
        for micro in range(1, batch + 1):
            assert step_shards(batch, micro) == len(batch_shards(range(batch), micro))


def test_an_update_that_cannot_fit_is_refused_with_a_micro_batch_that_can():
    cfg = GPTConfig.preset("gpt1")
    threads = blas_threads()  # the shards a step runs at once: check_fits counts them too
    need = {m: sum(estimate_memory(cfg, m, cfg.n_ctx, 8, threads).values()) for m in (1, 2, 4, 8)}
    available = need[4] / 0.9 + 1  # room for micro-batches of 4, not 8
    with pytest.raises(ValueError, match=r"--micro-batch-size 4: .* over 2 micro-batches") as err:
        check_fits(cfg, batch_size=8, micro_batch_size=8, available=available)
    assert "GiB available" in str(err.value) and "activations" in str(err.value)
    check_fits(cfg, batch_size=8, micro_batch_size=4, available=available)  # the advice fits
    with pytest.raises(ValueError, match="smaller preset"):
        check_fits(cfg, batch_size=8, micro_batch_size=8, available=need[1] / 2)
