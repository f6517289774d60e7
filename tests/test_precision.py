"""`precision: auto` on a CPU: bf16 only where the CPU computes it natively (a pure function of the
CPU's flags and the measured probe), an explicit bf16 on an emulating CPU kept but warned about."""

from __future__ import annotations

import logging

import pytest
import torch

from pipeline.precision import CpuBf16, choose_cpu_precision, cpu_bf16, cpu_precision, probe_bf16_speedup

AVX2 = CpuBf16("AVX2", native=False, speedup=0.02)  # the AMD EPYC of issue 11: bf16 ~50x slower
SAPPHIRE = CpuBf16("AVX512", native=True, speedup=None)  # AVX512-BF16 / AMX: flags vouch, no probe
ARM_FAST = CpuBf16("SVE256", native=False, speedup=1.8)  # flags silent, the probe measures bf16 faster
ARM_SLOW = CpuBf16("DEFAULT", native=False, speedup=0.9)


@pytest.mark.parametrize("cpu, expected", [(AVX2, "fp32"), (SAPPHIRE, "bf16"), (ARM_FAST, "bf16"),
                                           (ARM_SLOW, "fp32")])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(cpu, expected):
    choice = choose_cpu_precision("auto", cpu)
    assert choice.precision == expected
    assert choice.reason.startswith(f"auto: CPU capability {cpu.capability}")


def test_explicit_choices_are_kept_and_emulated_bf16_states_its_measured_slowdown():
    slow = choose_cpu_precision("bf16", AVX2)
    assert slow.precision == "bf16" and "emulated" in slow.reason and "50x slower than fp32" in slow.reason
    assert "emulated" not in choose_cpu_precision("bf16", SAPPHIRE).reason
    assert choose_cpu_precision("fp32", SAPPHIRE).precision == "fp32"


def test_this_cpu_is_measured_once_and_the_choice_logged_once(caplog):
    cpu = cpu_bf16()
    assert cpu.capability == torch.backends.cpu.get_cpu_capability()
    assert cpu.native or cpu.speedup is not None  # the probe runs exactly where the flags do not vouch
    assert cpu_bf16() is cpu  # cached: the probe runs once per process
    cpu_precision.cache_clear()
    with caplog.at_level(logging.INFO, logger="pipeline.precision"):
        first, again = cpu_precision("auto"), cpu_precision("auto")
    assert first is again and first == choose_cpu_precision("auto", cpu)
    assert [r.getMessage() for r in caplog.records] == [f"CPU precision {first.precision}: {first.reason}"]


def test_probe_measures_a_real_ratio():
    speedup = probe_bf16_speedup(m=64, k=64, n=64, repeats=2)
    assert 0 < speedup < 100
