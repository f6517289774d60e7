"""FP8 prefill: the decoder layers' linear projections run as float8 (e4m3) matmuls while prompts are prefilled.

Prefill is where a detector spends most of its GPU time (a triage pass is nothing else; in generation it is
~2/3 of the time at ~1,200-token prompts), and on a Hopper GPU it is bound by matmul throughput: bf16 tops
out near 790 TFLOP/s on an H200, float8 runs about twice as fast. `Fp8Prefill` keeps a float8 copy of every
plain `nn.Linear` weight of the decoder layers (q/k/v/o, gate/up/down; a PEFT LoRA layer's frozen base, whose
adapters then still add their bf16 delta), with one scale per output channel. Inside `active()` those
modules' forward quantizes its input per token (one scale per row) and calls `torch._scaled_mm`; outside
it they are untouched, so the decode step, its captured CUDA graph and the weights in a state dict stay bf16.

It is an approximation, unlike the shared prefix: per-row scaling keeps a row's relative error near 3%
per projection, and the verdict probability moves accordingly. `engine.fp8_prefill` is therefore off by
default; bench/bench_engine.py reports the probabilities' difference beside the speed.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

log = logging.getLogger(__name__)

E4M3_MAX = 448.0  # largest finite float8_e4m3fn
PROJECTIONS = (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")), ("mlp", ("gate_proj", "up_proj", "down_proj")))


def quantize_rows(x):
    """`x` [..., k] as (float8_e4m3fn [rows, k], float32 scales [rows, 1]): each row scaled so its largest
    magnitude becomes 448."""
    import torch

    rows = x.reshape(-1, x.shape[-1])
    scale = rows.abs().amax(-1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
    return (rows.float() / scale).to(torch.float8_e4m3fn), scale


def scaled_linear(x, weight, weight_scale, quant=quantize_rows, bias=None):
    """`x @ weight.T (+ bias)` with `weight` float8 [n, k] and its scales [1, n]; `x` quantized per row by `quant`.
    Returns x's dtype, shape [..., n]."""
    import torch

    xq, xs = quant(x)
    out = torch._scaled_mm(xq, weight.t(), scale_a=xs, scale_b=weight_scale, out_dtype=torch.bfloat16)
    out = out.to(x.dtype).view(*x.shape[:-1], weight.shape[0])
    return out if bias is None else out + bias


def _fast_quant(device_type: str):
    """`quantize_rows` compiled into one kernel on CUDA (eager, ~4 passes over the activations, elsewhere or
    when compiling fails)."""
    from pipeline.inference.fused import compiled

    return compiled(quantize_rows, device_type, "fp8 prefill: the activation quantization")


class Fp8Prefill:
    """Float8 copies of the decoder layers' linear weights (`layers`: the model's decoder layers), switched on
    for the prefill by `active()`. Modules that are not a plain floating-point `nn.Linear` with widths divisible
    by 16 (what `_scaled_mm` needs) stay as they are."""

    def __init__(self, layers):
        import torch

        self.modules: list[tuple] = []  # (module, float8 weight [n, k], scales [1, n])
        skipped = 0
        for layer in layers:
            for part, names in PROJECTIONS:
                for name in names:
                    module = getattr(getattr(layer, part), name)
                    module = getattr(module, "base_layer", module)  # a PEFT LoRA layer: its frozen base
                    weight = module.weight if type(module) is torch.nn.Linear else None
                    if weight is None or not weight.is_floating_point() or weight.shape[0] % 16 or weight.shape[1] % 16:
                        skipped += 1
                        continue
                    with torch.no_grad():
                        wq, ws = quantize_rows(weight.detach())
                    self.modules.append((module, wq, ws.reshape(1, -1).contiguous()))
        device = self.modules[0][1].device.type if self.modules else "cpu"
        self.quant = _fast_quant(device)
        self._last: tuple | None = None  # (input, its quantization): q/k/v and gate/up share one input
        self.bytes = sum(wq.numel() for _, wq, _ in self.modules)
        log.info("fp8 prefill: %d projections in float8 (%.2f GB), %d left as they are", len(self.modules),
                 self.bytes / 1e9, skipped)

    def _quant_once(self, x):
        """`x` quantized, once for consecutive projections of the same input tensor (q, k, v; gate, up). Only
        valid inside `active()`, whose prefill never writes into a projection's input in place."""
        if self._last is None or self._last[0] is not x:
            self._last = (x, self.quant(x))
        return self._last[1]

    @contextlib.contextmanager
    def active(self):
        """Within: the quantized modules compute in float8 (per-token activation scales)."""
        for module, wq, ws in self.modules:
            module.forward = partial(scaled_linear, weight=wq, weight_scale=ws, quant=self._quant_once,
                                     bias=module.bias)
        try:
            yield
        finally:
            self._last = None
            for module, _, _ in self.modules:
                del module.forward
