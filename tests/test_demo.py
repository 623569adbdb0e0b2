"""The demo command does real work: a short run lowers the held-out loss by a clear margin."""

import subprocess
import sys

from minigpt1.demo import run_demo


def test_demo_lowers_held_out_loss():
    start, end = run_demo(steps=40, log_every=40)
    assert abs(start - 5.545) < 0.05  # untrained: about ln(256), a uniform guess over bytes
    assert end < start - 2.0  # 40 steps reach the unigram plateau (~3 nats)


def test_demo_command_line_exits_cleanly():
    result = subprocess.run(
        [sys.executable, "-m", "minigpt1", "demo", "--steps", "5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "held-out loss after 5 steps" in result.stdout
