"""Batch sizing from free GPU memory: how many rows one batch takes, and its KV-cache width.

A fixed batch size leaves most of a large GPU idle (an H200 holds a 7B model in 15 of its 141 GB) or
runs a small one out of memory. On GPU the engine asks `plan_batch` for each batch instead: the KV
cache of a row costs ``width x kv_bytes_per_token`` (width = its longest prompt + the answer budget,
rounded up as the decoder rounds it), prefill needs a workspace bounded by its token chunk, and the
rows that fit in `fraction` of the available memory make the batch, up to a cap (engine.max_memory_batch).
`plan_batch` is a pure function of (free bytes, model dimensions, prompt lengths); `available_bytes`
reads the device. CPU keeps engine.batch_size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.inference.decoder import PREFILL_TOKENS, WIDTH_STEP

GIB = 2 ** 30


@dataclass(frozen=True)
class ModelDims:
    """The shape of a decoder-only transformer, as far as its memory per token goes."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int

    @classmethod
    def of(cls, model) -> "ModelDims":
        """The dimensions of a transformers causal LM (a PEFT wrapper included), in its weights' dtype."""
        cfg = model.config
        heads = cfg.num_attention_heads
        return cls(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, intermediate=cfg.intermediate_size,
                   heads=heads, kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
                   head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads, vocab=cfg.vocab_size,
                   dtype_bytes=next(model.parameters()).element_size())

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values of one token over all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def activation_bytes_per_token(self) -> int:
        """Live activations of one token inside one layer during a forward pass (inference frees each
        layer's before the next): residual, norm, q/k/v/attention output, the MLP's gate, up and product,
        and the keys/values repeated per query head for attention."""
        return (4 * self.hidden + 3 * self.intermediate + 2 * self.heads * self.head_dim) * self.dtype_bytes


@dataclass(frozen=True)
class BatchPlan:
    """One batch: how many of the prompts (longest first) it takes, and its KV-cache width (0: no cache)."""

    rows: int
    width: int


def plan_batch(free_bytes: int, dims: ModelDims, prompt_lengths: Sequence[int], new_tokens: int, cap: int,
               fraction: float = 0.9, prefill_tokens: int = PREFILL_TOKENS, max_tokens: int | None = None) -> BatchPlan:
    """The rows of one batch that fit in `fraction` of `free_bytes`, taking `prompt_lengths` longest first.

    `new_tokens` > 0 is generation: every row holds a KV cache of width = longest prompt + `new_tokens`
    rounded up to the decoder's width step, plus a prefill workspace of `prefill_tokens` tokens' activations
    (the decoder prefills in chunks of that size). `new_tokens` = 0 is one forward pass (the verdict
    probability): no cache, every row's activations at the longest prompt's width. Rows are at most `cap`
    and the number of prompts, and with `max_tokens` at most that many prompt tokens (rows x longest prompt):
    transformers' forward and generate run a whole batch at once, and their allocations fragment the allocator
    of a large GPU (an H200 ran out of memory with 35 GiB reserved but unusable) long after bigger batches stop
    adding speed. Raises ValueError when not even one row fits.
    """
    if not prompt_lengths:
        return BatchPlan(0, 0)
    longest = max(prompt_lengths)
    budget = int(free_bytes * fraction)
    logits = 3 * dims.vocab * 4  # a row's logits in the model dtype, as float32, and the softmax
    if new_tokens > 0:
        width = -(-(longest + new_tokens) // WIDTH_STEP) * WIDTH_STEP
        per_row = width * dims.kv_bytes_per_token + logits
        # The decoder's prefill call: its chunk's activations, twice for the attention kernel's workspace.
        budget -= 2 * min(prefill_tokens, len(prompt_lengths) * longest) * dims.activation_bytes_per_token
        need = f"a KV cache of {width} tokens ({longest}-token prompt + {new_tokens} new)"
    else:
        width = 0
        # transformers' forward keeps every token's keys/values while it runs (use_cache, and a shared
        # prefix's cache expanded per row): counted too, so the estimate holds for both scoring paths.
        per_row = longest * (dims.activation_bytes_per_token + dims.kv_bytes_per_token) + logits
        need = f"the activations of a {longest}-token prompt"
    rows = min(cap, len(prompt_lengths), max(budget, 0) // per_row)
    if max_tokens is not None and rows >= 1:
        rows = min(rows, max(1, max_tokens // longest))
    if rows < 1:
        raise ValueError(f"{free_bytes / GIB:.2f} GiB of free GPU memory do not hold even one row ({need}, "
                         f"{per_row / GIB:.2f} GiB); free memory on the GPU, lower engine.max_new_tokens or shorten "
                         "the input")
    return BatchPlan(int(rows), width)


def available_bytes(device, held: int = 0) -> int:
    """Bytes a new batch may use on CUDA `device`: free on the device, plus memory PyTorch's allocator has
    reserved but not handed out, plus `held` bytes (a KV cache the next batch reuses or replaces)."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device) + held
