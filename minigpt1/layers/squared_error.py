"""Mean squared error: the loss of a regression head (STS-B's similarity score, 0 to 5).

    loss = mean_i (y_i - t_i)^2              y: (N,) predictions     t: (N,) targets

Backward (dloss is the upstream scalar):
    dy_i = dloss * 2 (y_i - t_i) / N
"""

from typing import NamedTuple


class SquaredErrorCache(NamedTuple):
    diff: object  # (N,) predictions minus targets


def squared_error_forward(predictions, targets):
    diff = predictions - targets  # (N,)
    loss = (diff * diff).mean()
    return loss, SquaredErrorCache(diff)


def squared_error_backward(dloss, cache):
    # forward: loss = mean(diff^2), diff = predictions - targets
    return (2.0 * dloss / cache.diff.size) * cache.diff  # (N,)
