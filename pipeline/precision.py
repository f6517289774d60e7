"""Which float precision to compute in: bf16 only where the hardware computes it natively.

On a CPU without native bf16 (AVX2-only x86, Apple M1, most consumer chips) PyTorch emulates bf16 and a
matmul runs ~50x slower than in fp32; with AVX512-BF16 or AMX it runs ~2x faster. `precision: auto`
(training) and `dtype: auto` (the engine) therefore ask `cpu_precision`, which decides once per process
from PyTorch's CPU flags and, where the flags do not say (ARM, unknown CPUs), a short measured probe.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# bf16 must beat fp32 by this factor in the probe before `auto` picks it on a CPU the flags do not vouch for.
PROBE_MARGIN = 1.1


@dataclass(frozen=True)
class CpuBf16:
    """What this CPU says and measures about bf16."""

    capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", "SVE256", ...
    native: bool  # PyTorch reports AVX512-BF16 or AMX
    speedup: float | None  # probe: fp32 matmul time / bf16 matmul time; None when not measured


@dataclass(frozen=True)
class Choice:
    """A resolved precision and why."""

    precision: str  # "bf16" or "fp32"
    reason: str


def choose_cpu_precision(requested: str, cpu: CpuBf16) -> Choice:
    """Resolve `requested` ("auto", "bf16" or "fp32") for a CPU. A pure function of the CPU's report.

    auto -> bf16 when the flags report AVX512-BF16/AMX or the probe measured bf16 at least PROBE_MARGIN
    faster than fp32, fp32 otherwise. An explicit choice is kept; the reason says what it costs.
    """
    measured = f"measured bf16 {cpu.speedup:.2f}x fp32 speed" if cpu.speedup is not None else "not measured"
    if cpu.native:
        why = f"CPU capability {cpu.capability} with native bf16 (AVX512-BF16/AMX)"
    elif cpu.speedup is not None and cpu.speedup >= PROBE_MARGIN:
        why = f"CPU capability {cpu.capability}, no bf16 flag, but {measured}"
    else:
        why = f"CPU capability {cpu.capability} without native bf16 ({measured})"
    fast = cpu.native or (cpu.speedup is not None and cpu.speedup >= PROBE_MARGIN)
    if requested == "auto":
        return Choice("bf16" if fast else "fp32", f"auto: {why}")
    if requested == "bf16" and not fast:
        slowdown = f"{1 / cpu.speedup:.0f}x slower than fp32" if cpu.speedup else "much slower than fp32"
        return Choice("bf16", f"bf16 as configured, although emulated here: {why}; expect it {slowdown}")
    return Choice(requested, f"{requested} as configured ({why})")


def probe_bf16_speedup(m: int = 256, k: int = 576, n: int = 1536, repeats: int = 3) -> float:
    """fp32 time / bf16 time of one (m x k) @ (k x n) matmul on this CPU, best of `repeats` (~0.1-0.5 s)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm-up: kernels picked, memory touched
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            x @ y
            best = min(best, time.perf_counter() - t0)
        timings[dtype] = best
    return timings[torch.float32] / max(timings[torch.bfloat16], 1e-9)


@functools.cache
def cpu_bf16() -> CpuBf16:
    """This process's CPU: PyTorch's flags, and the probe when the flags do not report native bf16."""
    import torch

    native = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    speedup = None if native else probe_bf16_speedup()
    return CpuBf16(torch.backends.cpu.get_cpu_capability(), native, speedup)


@functools.cache
def cpu_precision(requested: str = "auto") -> Choice:
    """Resolve `requested` for this process's CPU and log the choice and its reason once per process;
    an explicit bf16 on a CPU that emulates it is logged as a warning with the measured slowdown."""
    choice = choose_cpu_precision(requested, cpu_bf16())
    emulated = requested == "bf16" and "emulated" in choice.reason
    log.log(logging.WARNING if emulated else logging.INFO, "CPU precision %s: %s", choice.precision, choice.reason)
    return choice
