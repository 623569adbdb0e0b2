"""GPT: token + position embeddings -> n_layer post-LN blocks -> tied LM head; the L1 loss.

    h0 = U We + Wp                        (B, T, C)   equation 2 of the paper
    h_l = block(h_{l-1})  for l = 1..n    (B, T, C)   no final LayerNorm in GPT-1
    P(u) = softmax(h_n We^T)              (B, T, V)   the output matrix is the input embedding

`model.params` is a flat dict whose keys and shapes are exactly those of HuggingFace's
`OpenAIGPTModel` state dict, so weights move between the two without renaming. The gradients
come back in a dict with the same keys. The LM head has no parameter of its own: its gradient
is added into `tokens_embed.weight`, which therefore hears from both ends of the network.
"""

from typing import NamedTuple

from .. import backend
from ..config import GPTConfig
from ..fast.batch_threads import concatenated_row_shards
from ..layers import (
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    matrix_product,
    position_weights,
    target_log_probs,
)
from .block import BLOCK_PARAM_SHAPES, block_backward, block_decode, block_forward
from .huggingface import read_pretrained, write_pretrained
from .openai_release import is_release_folder, read_release
from .parameters import check_params, init_params


class BodyCache(NamedTuple):
    embedding: object
    embd_dropout: object
    blocks: list


class LMHeadCache(NamedTuple):
    ce: object  # the cross-entropy cache (probabilities, targets, weights)
    h: object  # (B, T, C) the hidden states the head read


class GPT:
    """GPT-1 with hand-written forward and backward passes, on NumPy ("cpu") or CuPy ("cuda")."""

    def __init__(self, cfg, seed=0, device="cpu", dtype="float32", params=None):
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.seed = seed
        self.device = device
        self.dtype = backend.check_dtype(dtype)
        if params is None:
            self.params = init_params(cfg, seed, device, self.dtype)
        else:
            check_params(cfg, params)
            self.params = {k: backend.to_device(v, device, self.dtype) for k, v in params.items()}
        self.rng = backend.device_rng(device, seed)  # dropout masks when no rng is passed

    def to(self, device=None, dtype=None):
        """Move (and/or cast) the parameters in place; returns the model."""
        device = device or self.device
        self.dtype = backend.check_dtype(dtype or self.dtype)
        self.params = {k: backend.to_device(v, device, self.dtype) for k, v in self.params.items()}
        if device != self.device:
            self.device = device
            self.rng = backend.device_rng(device, self.seed)
        return self

    def block_params(self, i):
        """Block i's parameters under the block's short names (`ln_1.weight`, ...)."""
        return {name: self.params[f"h.{i}.{name}"] for name in BLOCK_PARAM_SHAPES}

    # ---- input checks ------------------------------------------------------------------

    def _prepare_ids(self, ids, max_len=None):
        """ids on the model's device as int64, after checking shape, length and range."""
        max_len = max_len or self.cfg.n_ctx
        xp = backend.module_for(self.device)
        ids = backend.to_device(ids, self.device)
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape (B, T), got {tuple(ids.shape)}")
        if ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        T = ids.shape[1]
        if not 1 <= T <= max_len:
            raise ValueError(
                f"sequence length {T} is outside 1..{max_len} (n_ctx={self.cfg.n_ctx}); "
                "cut the input into windows or drop tokens from the left"
            )
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.cfg.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"token id {bad} is outside 0..{self.cfg.vocab_size - 1} (vocab_size)")
        return ids.astype(xp.int64, copy=False)

    def _dropout_rates(self, train):
        if not train:
            return 0.0, 0.0, 0.0
        return self.cfg.embd_pdrop, self.cfg.attn_pdrop, self.cfg.resid_pdrop

    # ---- the body: embeddings and blocks -----------------------------------------------

    def body_forward(self, ids, train=False, rng=None):
        """ids (B, T) -> final hidden states h (B, T, C) and the cache for body_backward."""
        embd_p, attn_p, resid_p = self._dropout_rates(train)
        rng = rng if rng is not None else self.rng
        p = self.params
        x, embedding = embedding_forward(ids, p["tokens_embed.weight"], p["positions_embed.weight"])
        x, embd_dropout = dropout_forward(x, embd_p, rng)  # (B, T, C)
        blocks = []
        for i in range(self.cfg.n_layer):
            x, cache = block_forward(x, self.block_params(i), self.cfg.n_head,
                                     self.cfg.layer_norm_epsilon, attn_p, resid_p, rng)
            blocks.append(cache)
        return x, BodyCache(embedding, embd_dropout, blocks)

    def body_backward(self, dh, cache, dwte=None):
        """dh (B, T, C) -> gradients of every parameter, as a dict with the params' keys.

        `dwte` (V, C), the tied LM head's gradient, receives the embedding's share in place.
        """
        grads = {}
        for i in reversed(range(self.cfg.n_layer)):
            dh, block_grads = block_backward(dh, cache.blocks[i])
            grads.update({f"h.{i}.{name}": g for name, g in block_grads.items()})
        # forward: x = dropout(wte[ids] + wpe[:T])
        dh = dropout_backward(dh, cache.embd_dropout)
        grads["tokens_embed.weight"], grads["positions_embed.weight"] = embedding_backward(
            dh, cache.embedding, dwte
        )
        return {name: grads[name] for name in self.params}  # HF order

    # ---- the language model: L1 --------------------------------------------------------

    def forward(self, ids, train=False, rng=None):
        """Next-token logits (B, T, V) for every position; dropout only when train=True."""
        ids = self._prepare_ids(ids)
        h, _ = self.body_forward(ids, train, rng)
        return self.head_logits(h)  # (B, T, V)

    def decode(self, ids, past=None):
        """Logits (B, T, V) of new tokens `ids` (B, T) after the `past` ones; and the new past.

        The key/value cache of generation: each layer's keys and values of every token seen
        so far, so that one new token costs one position's work, not the whole sequence's.
        """
        seen = 0 if past is None else past[0][0].shape[2]
        ids = self._prepare_ids(ids, max_len=self.cfg.n_ctx - seen)
        p = self.params
        x, _ = embedding_forward(ids, p["tokens_embed.weight"], p["positions_embed.weight"], seen)
        new_past = []
        for i in range(self.cfg.n_layer):  # no dropout, and no cache for a backward pass
            x, keys, values = block_decode(x, self.block_params(i), self.cfg.n_head,
                                           self.cfg.layer_norm_epsilon,
                                           None if past is None else past[i])
            new_past.append((keys, values))
        return self.head_logits(x), new_past

    def attention_maps(self, ids):
        """Attention probabilities of every layer and head: a list of (B, nh, T, T) arrays."""
        _, cache = self.body_forward(self._prepare_ids(ids))
        return [block.attn.probs for block in cache.blocks]

    def lm_loss(self, ids, mask=None):
        """L1 without gradients (evaluation): the number lm_loss_and_grads returns.

        On the CPU the rows run in shares fixed by the batch, at most one per core
        (fast/batch_threads.py): the loss is the same on any number of cores. It equals the
        one pass of lm_loss_and_grads bit for bit where a product's numbers do not depend on
        how many rows it has; with some OpenBLAS kernels they do, and the two agree to rounding.
        """
        ids, target_mask = self._lm_inputs(ids, mask)
        scale = position_weights(ids[:, 1:], target_mask, self.dtype)  # (B*(T-1),) w / sum(w)
        V = self.cfg.vocab_size

        def target_log_probs_of(rows):  # log p(next token) at each position of these rows
            h, _ = self.body_forward(ids[rows, :-1])  # (b, T-1, C)
            logits = self.head_logits(h).reshape(-1, V)  # (b*(T-1), V)
            return target_log_probs(logits, ids[rows, 1:].reshape(-1))[0]

        B, T = ids.shape  # each row runs T-1 tokens of n_embd channels
        logp = concatenated_row_shards(target_log_probs_of, B, (T - 1) * self.cfg.n_embd,
                                       self.device)  # (B*(T-1),)
        return float(-(scale * logp).sum())

    def lm_loss_and_grads(self, ids, mask=None, train=False, rng=None, scale=1.0):
        """L1 on ids (B, T): predict ids[:, 1:] from ids[:, :-1]; returns (loss, grads).

        The loss is the mean cross-entropy over predicted positions whose target is unmasked
        (`mask` (B, T) aligned with ids, 1 = counts; mask[:, 0] is never a target), the
        convention of HuggingFace's shifted labels and of the original fine-tuning code.
        The last token is only a target, so T may be n_ctx + 1: a window of n_ctx inputs.
        `scale` multiplies the loss and every gradient: ids' share of a larger batch.
        """
        loss, head, body = self._lm_forward(ids, mask, train, rng)
        dh, dwte = self.lm_head_backward(scale, head)  # seeded with d(scale L)/dL = scale
        grads = self.body_backward(dh, body, dwte)  # the embedding adds its share into dwte
        return scale * float(loss), grads

    def _lm_inputs(self, ids, mask):
        """ids checked and on the device; the mask of the targets ids[:, 1:] (or None)."""
        ids = self._prepare_ids(ids, max_len=self.cfg.n_ctx + 1)
        if ids.shape[1] < 2:
            raise ValueError("the LM loss needs sequences of at least 2 tokens (input + target)")
        if mask is None:
            return ids, None
        mask = backend.to_device(mask, self.device)
        if mask.shape != ids.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} must equal ids shape {ids.shape}")
        return ids, mask[:, 1:]

    def _lm_forward(self, ids, mask, train, rng):
        """L1's forward pass: (loss, LM-head cache, body cache)."""
        ids, target_mask = self._lm_inputs(ids, mask)
        # causal attention: h at positions 0..T-2 never sees token T-1, so leave it out
        h, body = self.body_forward(ids[:, :-1], train, rng)  # (B, T-1, C)
        loss, head = self.lm_head_forward(h, ids[:, 1:], target_mask)
        return loss, head, body

    # ---- the tied LM head, shared by L1 and the auxiliary term of L3 -------------------

    def head_logits(self, h):
        """Hidden states h (..., C) -> next-token logits (..., V): h @ wte^T, the output matrix
        tied to the input embedding, as one 2-D product (a stack of B smaller ones is slower)."""
        wte = self.params["tokens_embed.weight"]  # (V, C)
        logits = matrix_product(h.reshape(-1, h.shape[-1]), wte.T)  # (N, V)
        return logits.reshape(*h.shape[:-1], wte.shape[0])

    def lm_head_forward(self, h, targets, weights=None):
        """Cross-entropy of next tokens `targets` (B, T) given hidden states h (B, T, C).

        `weights` (B, T) say how much each position counts (0 = not at all); the loss is
        sum(w * -log p) / sum(w). Returns (loss, cache for lm_head_backward).
        """
        loss, ce = cross_entropy_forward(self.head_logits(h), targets, weights)
        return loss, LMHeadCache(ce, h)

    def lm_head_backward(self, dloss, cache):
        """-> dh (B, T, C) and the head's share of tokens_embed.weight's gradient (V, C)."""
        wte = self.params["tokens_embed.weight"]  # (V, C)
        V, C = wte.shape
        dlogits = cross_entropy_backward(dloss, cache.ce).reshape(-1, V)  # (B*T, V)
        # forward: logits = h @ wte^T
        dh = matrix_product(dlogits, wte)  # (B*T, C)
        dwte = matrix_product(dlogits.T, cache.h.reshape(-1, C))  # (V, B*T) @ (B*T, C)
        return dh.reshape(cache.h.shape), dwte

    # ---- files -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, device="cpu", dtype="float32"):
        """A GPT from a local folder (no network, no PyTorch): a HuggingFace openai-gpt folder
        (config.json + model.safetensors, float32, float16 or bfloat16), or the 2018 release's
        model/ folder (params_shapes.json + params_0.npy ... params_9.npy)."""
        read = read_release if is_release_folder(path) else read_pretrained
        cfg, params = read(path)
        return cls(cfg, device=device, dtype=dtype, params=params)

    def save_pretrained(self, path):
        """Write a HuggingFace openai-gpt folder (config.json + model.safetensors, float32)
        that transformers' AutoModelForCausalLM.from_pretrained(path) loads as it is."""
        write_pretrained(path, self.cfg, self.params)
