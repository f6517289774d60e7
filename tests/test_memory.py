"""Batch sizing from free GPU memory (pipeline/inference/memory.py) as a pure function, and CPU keeping
engine.batch_size."""

import pytest

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.decoder import WIDTH_STEP
from pipeline.inference.engine import Detector
from pipeline.inference.memory import GIB, ModelDims, plan_batch

# Mistral-7B in bf16.
MISTRAL_7B = ModelDims(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128, vocab=32768,
                       dtype_bytes=2)


def test_mistral_7b_needs_128_kib_of_kv_cache_per_token():
    assert MISTRAL_7B.kv_bytes_per_token == 128 * 1024


def test_generation_rows_fill_the_free_memory_and_no_more():
    lengths = [1170] * 10_000
    plan = plan_batch(120 * GIB, MISTRAL_7B, lengths, 128, cap=100_000, fraction=0.9, prefill_tokens=16_384)
    assert plan.width == 1408  # 1,170 + 128 rounded up to the decoder's width step
    assert plan.width % WIDTH_STEP == 0
    per_row = plan.width * MISTRAL_7B.kv_bytes_per_token
    workspace = 2 * 16_384 * MISTRAL_7B.activation_bytes_per_token
    assert plan.rows * per_row + workspace <= 0.9 * 120 * GIB < (plan.rows + 1) * (per_row + 3 * 32768 * 4) + workspace
    assert 500 < plan.rows < 700  # ~108 GiB of KV cache at 176 MiB a row


def test_rows_follow_memory_prompt_length_cap_and_prompt_count():
    def rows(free_gib, length, new=128, cap=100_000, n=10_000):
        return plan_batch(free_gib * GIB, MISTRAL_7B, [length] * n, new, cap=cap).rows

    assert rows(120, 1170, cap=256) == 256
    assert rows(60, 1170) < rows(120, 1170) // 2 + 1  # half the memory (less the fixed workspace): under half
    assert rows(120, 2 * 1170) < rows(120, 1170)  # longer prompts: fewer rows
    assert rows(120, 150, new=128) > 3 * rows(120, 1170)  # short messages: many more
    assert rows(120, 1170, n=7) == 7  # never more rows than prompts
    # Only the longest prompt sets the width: the batch's rows are longest first.
    mixed = plan_batch(120 * GIB, MISTRAL_7B, [2000] + [100] * 5000, 128, cap=100_000)
    assert mixed.width == plan_batch(120 * GIB, MISTRAL_7B, [2000] * 5001, 128, cap=100_000).width


def test_verdict_probability_sizes_activations_and_the_forward_pass_keys_not_a_decode_cache():
    plan = plan_batch(40 * GIB, MISTRAL_7B, [1170] * 10_000, 0, cap=100_000)
    assert plan.width == 0
    # transformers' forward holds every token's keys/values while it runs (measured: an H200 ran out of
    # memory on a plan that left them out).
    per_row = 1170 * (MISTRAL_7B.activation_bytes_per_token + MISTRAL_7B.kv_bytes_per_token) + 3 * 32768 * 4
    assert plan.rows == int(40 * GIB * 0.9) // per_row


def test_a_token_bound_caps_the_rows_of_an_unchunked_forward():
    """transformers' forward runs a batch at once: `max_tokens` bounds rows x longest prompt, never below one row."""
    free = plan_batch(120 * GIB, MISTRAL_7B, [1170] * 10_000, 0, cap=256)
    bounded = plan_batch(120 * GIB, MISTRAL_7B, [1170] * 10_000, 0, cap=256, max_tokens=65_536)
    assert free.rows > 56 and bounded.rows == 65_536 // 1170 == 56
    assert plan_batch(120 * GIB, MISTRAL_7B, [100_000], 0, cap=256, max_tokens=65_536).rows == 1


def test_too_little_memory_is_a_clear_error():
    with pytest.raises(ValueError, match="do not hold even one row.*engine.max_new_tokens"):
        plan_batch(1 * GIB, MISTRAL_7B, [30_000], 2000, cap=256)
    assert plan_batch(1 * GIB, MISTRAL_7B, [], 128, cap=256).rows == 0


def test_model_dims_of_a_loaded_model_and_cpu_keeps_batch_size(tiny_mistral):
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                   EngineConfig(dtype="float32", batch_size=2, memory_batching=True, max_memory_batch=64))
    dims = ModelDims.of(det.model)
    shape = (dims.layers, dims.hidden, dims.heads, dims.kv_heads, dims.head_dim, dims.dtype_bytes)
    assert shape == (2, 64, 4, 2, 16, 4)
    assert dims.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4
    if det.device == "cpu":
        assert det._memory_rows(16) is None
        assert [len(b) for b in det._batches([100] * 5, extra=16)] == [2, 2, 1]
