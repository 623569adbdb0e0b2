"""On a GPU a training step only queues work: nothing inside it copies between host and device.

A copy to or from the host (a `float(x)`, an `.get()`, a NumPy array given to a kernel) makes
the host wait until the GPU has finished everything queued before it. So: queue a kernel
that keeps the GPU busy for a couple of seconds, then run a whole step (forward, backward,
AdamW). If the step returns while the busy kernel is still running, no copy happened inside.
The loss is read only after, as a training loop reads it once per step.
"""

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, backend
from minigpt1.training.optim import AdamW

pytestmark = pytest.mark.gpu

BUSY_SOURCE = r"""
extern "C" __global__ void busy(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""
BUSY_CYCLES = 4_000_000_000  # about two seconds at a GPU's 2 GHz


@pytest.fixture(autouse=True)
def need_gpu():
    if not backend.gpu_available():
        pytest.skip("no CuPy / NVIDIA GPU on this machine (tests/gpu/run.sh runs these on one)")


def test_a_training_step_never_waits_for_the_gpu():
    import cupy

    cfg = GPTConfig.preset("tiny", n_ctx=256)  # longer than a query block: blocked attention
    model = GPT(cfg, seed=0, device="cuda")
    opt = AdamW(model.params)
    host_ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (4, cfg.n_ctx + 1))
    ids = model._prepare_ids(host_ids, max_len=cfg.n_ctx + 1)  # the batch moves before the step
    rng = backend.device_rng("cuda", 1)

    def step():  # lm_loss_and_grads and AdamW, without reading the loss back
        h, body = model.body_forward(ids[:, :-1], train=True, rng=rng)
        loss, head = model.lm_head_forward(h, ids[:, 1:])
        dh, dwte = model.lm_head_backward(1.0, head)
        opt.step(model.body_backward(dh, body, dwte))
        return loss

    step()  # compiles the kernels and fills CuPy's memory pool
    cupy.cuda.Device().synchronize()
    cupy.RawKernel(BUSY_SOURCE, "busy")((1,), (1,), (np.int64(BUSY_CYCLES),))
    loss = step()
    assert not cupy.cuda.get_current_stream().done, (
        "the step waited for the GPU: something inside it copied to or from the host"
    )
    assert np.isfinite(float(loss))  # now the host may wait
