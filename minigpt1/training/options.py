"""What the two training configs (TrainConfig, FinetuneConfig) share: a field that carries the
help text of its command-line flag, and the check that refuses a meaningless float setting."""

import math
from dataclasses import field


def option(default, help):
    """A dataclass field whose help text the command line shows for its flag."""
    return field(default=default, metadata={"help": help})


def check_finite_non_negative(config, names):
    """Refuse a NaN, an infinity or a negative value among these float settings: each would
    train without an error and without learning."""
    for name in names:
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
