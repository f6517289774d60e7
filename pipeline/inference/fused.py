"""The prefill's elementwise work in fewer passes: each piece compiled into one kernel on CUDA, eager elsewhere.

Outside its matmuls a Llama/Mistral layer reads and writes its activations many times over: RMSNorm is six
passes in float32, the rotary embedding four multiplies, two additions and two concatenations, SiLU x up two
more, and repeating every key/value head for its query heads copies the keys and values four times over
(Mistral: 32 query heads, 8 key/value heads). On an H200 those passes took ~40% of a 7B triage's GPU time
(`python bench/bench_engine.py --profile-triage 256`). The functions below do transformers' arithmetic
(`MistralRMSNorm`, `apply_rotary_pos_emb`, `MistralMLP`'s activation) in one expression each; `compiled()`
turns one into a single Triton kernel on CUDA (symbolic in rows and tokens: one compilation for every batch;
constant in the hidden size, so a row's reduction reads it once), and
attention takes the key/value heads as they are (`enable_gqa`). On CPU they run eagerly, so the CPU tests
compare the same arithmetic with transformers' modules.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def rms_norm(x, weight, eps: float):
    """`MistralRMSNorm`/`LlamaRMSNorm`: `x` normalised in float32 by its root mean square, back in x's dtype,
    times `weight`."""
    import torch

    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotary(q, k, cos, sin):
    """transformers' `apply_rotary_pos_emb` for q/k laid out as the projections give them, [b, w, heads, d] (so a
    fused kernel reads and writes them contiguously), and cos/sin [1 or b, w, d]."""
    import torch

    cos, sin = cos[:, :, None], sin[:, :, None]
    half = q.shape[-1] // 2

    def turn(x):  # rotate_half
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    return q * cos + turn(q) * sin, k * cos + turn(k) * sin


def silu_mul(gate, up):
    """The SwiGLU MLP's activation: silu(gate) x up."""
    import torch.nn.functional as F

    return F.silu(gate) * up


STATIC_WIDTHS = True  # False: every dimension symbolic (how bench/bench_engine.py --dynamic-widths compares)


def _mark_token_dims(args) -> None:
    """Let every dimension but the last of the tensor arguments vary without recompiling (rows, tokens, heads);
    the last (hidden, intermediate or head size) stays a constant, so a reduction over it reads the row once."""
    import torch

    for a in args:
        if isinstance(a, torch.Tensor) and a.dim() >= 2:
            for dim in range(a.dim() - 1):
                torch._dynamo.maybe_mark_dynamic(a, dim)


def compiled(fn, device_type: str, what: str):
    """`fn` compiled into one kernel on CUDA (`torch.compile`), else `fn` itself. The kernel is specialised to the
    last dimension's size (a few compilations: hidden size, MLP width) and symbolic in the others (one compilation
    for every batch and length). If compiling fails (no Triton, no compiler) it warns once and runs `fn` eagerly:
    same arithmetic, more passes."""
    if device_type != "cuda":
        return fn
    import torch

    state = {"fn": torch.compile(fn, dynamic=None if STATIC_WIDTHS else True)}

    def run(*args, **kwargs):
        try:
            if STATIC_WIDTHS:
                _mark_token_dims(args)
            return state["fn"](*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the eager function computes the same
            if state["fn"] is fn:
                raise
            log.warning("%s: compiling failed (%s); running it eagerly", what, str(e).splitlines()[0][:200])
            state["fn"] = fn
            return fn(*args, **kwargs)
    return run


class FusedPrefill:
    """The compiled pieces a `StaticDecoder` prefill uses on one device type."""

    def __init__(self, device_type: str):
        self.rms_norm = compiled(rms_norm, device_type, "fused RMSNorm")
        self.rotary = compiled(rotary, device_type, "fused rotary embedding")
        self.silu_mul = compiled(silu_mul, device_type, "fused SiLU x up")
