"""AdamW with decoupled weight decay, GPT-1's learning-rate schedules, and gradient clipping.

AdamW (Loshchilov & Hutter, the "modified L2" of the GPT-1 paper), for each parameter p with
gradient g at step t = 1, 2, ...:

    m = b1 m + (1 - b1) g                 v = b2 v + (1 - b2) g^2        (moments start at 0)
    p = p - lr wd p                       decay: matrices only, never biases or LayerNorm gains
    p = p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

This is PyTorch's `torch.optim.AdamW`. The original code scales the decay term by the same
bias-correction factor as the Adam step (it applies `lr * sqrt(1-b2^t)/(1-b1^t)` to both);
the two agree once t is in the hundreds and differ only during the first updates.
"""

import math

from ..backend import device_of, fast_path, to_device, xp_of


def decays(param):
    """GPT-1 decays every matrix (ndim >= 2: embeddings, all weights) and no vector."""
    return param.ndim >= 2


@fast_path
def adamw_update(p, g, m, v, t, lr, betas, eps, weight_decay):
    """One AdamW update of parameter p with gradient g at step t = 1, 2, ..., in place:

        m = b1 m + (1 - b1) g                 v = b2 v + (1 - b2) g^2
        p = p - lr wd p                       (wd = 0 for a parameter that does not decay)
        p = p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    minigpt1/fast/ computes the same with fewer passes over memory, on the CPU and the GPU.
    """
    xp = xp_of(p)
    b1, b2 = betas
    m[...] = b1 * m + (1.0 - b1) * g  # a running mean of the gradients
    v[...] = b2 * v + (1.0 - b2) * g * g  # and of their squares
    m_hat = m / (1.0 - b1**t)  # corrects m's start at zero
    v_hat = v / (1.0 - b2**t)  # corrects v's start at zero
    p -= lr * weight_decay * p  # decoupled weight decay
    p -= lr * m_hat / (xp.sqrt(v_hat) + eps)


class AdamW:
    """Updates a dict of parameter arrays in place. Its state is a flat dict of arrays."""

    def __init__(self, params, lr=2.5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.params = params
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = {name: xp_of(p).zeros_like(p) for name, p in params.items()}
        self.v = {name: xp_of(p).zeros_like(p) for name, p in params.items()}

    def step(self, grads, lr=None):
        """One update of every parameter from `grads` (same keys); `lr` overrides self.lr."""
        lr = self.lr if lr is None else lr
        self.t += 1
        for name, p in self.params.items():
            if not p.flags.c_contiguous:
                raise ValueError(f"parameter {name} must be a contiguous array to update in place")
            weight_decay = self.weight_decay if decays(p) else 0.0
            adamw_update(p, grads[name], self.m[name], self.v[name], self.t, lr, self.betas,
                         self.eps, weight_decay)

    def state_dict(self):
        """{'step': t, 'm.<name>': array, 'v.<name>': array}: ready for np.savez (not copies)."""
        state = {"step": self.t}
        state.update({f"m.{name}": m for name, m in self.m.items()})
        state.update({f"v.{name}": v for name, v in self.v.items()})
        return state

    def load_state_dict(self, state):
        self.t = int(state["step"])
        for name, p in self.params.items():
            for moments, key in ((self.m, f"m.{name}"), (self.v, f"v.{name}")):
                if key not in state or tuple(state[key].shape) != p.shape:
                    raise ValueError(f"optimizer state: {key} missing or not of shape {p.shape}")
                # a copy: the optimizer updates its moments in place
                moments[name] = to_device(state[key], device_of(p), p.dtype).copy()


def warmup_cosine(step, max_lr, warmup_steps, total_steps, min_lr=0.0):
    """GPT-1's pre-training schedule: linear from 0 over warm-up, then cosine down to min_lr.

    step 0 -> 0 (the first update has lr 0, as in the original); step == warmup_steps -> max_lr;
    step >= total_steps -> min_lr.
    """
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_linear(step, max_lr, warmup_steps, total_steps):
    """GPT-1's fine-tuning schedule: linear from 0 over warm-up, then linear down to 0."""
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return 0.0
    return max_lr * (total_steps - step) / max(1, total_steps - warmup_steps)


def clip_grad_norm(grads, max_norm=1.0):
    """Scale all gradients in place so their global L2 norm is at most max_norm.

    Returns the norm before clipping (worth logging: spikes announce instabilities).
    """
    # a dot product of each flat gradient with itself (no g * g temporary), summed on the
    # device: one number crosses to the host, not one per tensor
    squares = sum(xp_of(g).vdot(g.reshape(-1), g.reshape(-1)) for g in grads.values())
    total = math.sqrt(float(squares))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total
