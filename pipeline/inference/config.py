"""Config of inference (evaluation, scoring and serving share it): which detector to load (`DetectorModelConfig`,
the job's `model` section) and how the engine runs it (`EngineConfig`, the `engine` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config import ModelConfig, Strict


class DetectorModelConfig(ModelConfig):
    """The detector's weights: the shared `model` section, plus an adapter applied to a base."""

    name_or_path: str = Field(
        "embedded", description="A training artifact folder (LoRA adapter + training_config.json), a merged "
        "model folder, a hub id such as mistralai/Mistral-7B-Instruct-v0.3, or 'embedded'.",
    )
    adapter: str | None = Field(
        None, description="A PEFT adapter folder applied to `name_or_path` (when `name_or_path` is a base).")


class EngineConfig(Strict):
    """How the inference engine runs a detector: device, precision, attention, batching, decoding."""

    merge_adapter: bool = Field(True, description="Merge model.adapter into the weights (faster; one adapter only).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when visible, else CPU.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPU; on CPU bfloat16 only where the CPU computes it natively "
        "(AVX512-BF16/AMX, or a start-up probe measures it faster), else float32."
    )
    attn_implementation: Literal["sdpa_gqa", "sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa_gqa", description="Attention kernel; sdpa_gqa = SDPA, with grouped-query decode steps that read the "
        "KV cache once instead of repeating it per query group (pipeline/inference/attention.py).",
    )
    max_new_tokens: int = Field(512, ge=16, le=8192, description="Answer budget; answers that hit it are flagged.")
    batch_size: int = Field(32, ge=1, description="Most sequences per forward/generate call (on GPU only when "
                            "engine.memory_batching is false).")
    memory_batching: bool = Field(
        True, description="GPU only: size every batch (its rows, given the KV-cache width its longest prompt + "
        "max_new_tokens needs) from the free GPU memory (torch.cuda.mem_get_info) instead of batch_size, up to "
        "max_memory_batch rows (pipeline/inference/memory.py). CPU always uses batch_size.",
    )
    max_memory_batch: int = Field(
        256, ge=1, description="memory_batching: most rows per batch, however much memory is free (larger "
        "batches add little decode speed and delay the first results).",
    )
    memory_fraction: float = Field(
        0.9, gt=0, le=1, description="memory_batching: the share of the free GPU memory that a batch's KV cache "
        "and activations may take (the rest: allocator fragmentation, CUDA graphs, other processes).",
    )
    shared_prefix: bool = Field(
        True, description="Run the prompt tokens every communication shares (the chat template's start and the "
        "instruction) once per model and adapter and start every row from their keys/values, in generation and "
        "in the verdict probability (pipeline/inference/prefix.py). Same answers and probabilities, less prefill.",
    )
    fp8_prefill: bool = Field(
        False, description="Static decoder only: prefill the prompts with float8 (e4m3) linear layers, per-token and "
        "per-channel scales (pipeline/inference/fp8.py): about 1.5x faster prefill on GPUs with fp8 matmuls "
        "(compute capability 8.9+: H100/H200, L4, L40S) for one float8 copy of the weights (~7 GB on a 7B model). "
        "An approximation: probabilities move (README: 0.03 on average for the demo's adapter on the hand-written "
        "set; bench/bench_fp8_quality.py measures a model of yours). The shared prefix and the decode step stay in "
        "the model's dtype. On CUDA the first prefill compiles the activation quantization (Triton; eager if that "
        "fails).",
    )
    decode_attention: Literal["auto", "triton", "sdpa"] = Field(
        "auto", description="Static decoder only: the decode step's attention. triton: a flash-decoding kernel that "
        "reads each row's own length of the KV cache once for its group of query heads (pipeline/inference/"
        "decode_attention.py; CUDA, power-of-two head sizes >= 16); sdpa: torch's SDPA with a length mask over the "
        "whole cache width. auto: triton where it runs, else sdpa. If the kernel fails to compile, SDPA takes over "
        "(logged).",
    )
    max_batch_tokens: int | None = Field(
        None, ge=256, description="Most padded tokens (prompt + new) per batch; null: batch_size alone decides."
    )
    decoder: Literal["auto", "static", "generate"] = Field(
        "auto", description="Generation loop. static: complyray's loop over a preallocated KV cache, its decode "
        "step replayed as a CUDA graph on GPU (pipeline/inference/decoder.py; Llama/Mistral models); generate: transformers' "
        "generate. auto: static where the model supports it, else generate (logged).",
    )
    constrained: bool = Field(
        True, description="Decode under the verdict grammar (pipeline/inference/grammar.py, xgrammar): every answer "
        "that ends is a schema-valid verdict JSON object; one cut by max_new_tokens is reported as truncated. false: "
        "free decoding, answers read by the tolerant parser.",
    )
    max_field_chars: int | None = Field(
        None, ge=1, description="constrained only. Most characters the grammar allows in a text field (summary, rule, "
        "topic, each quote, reasoning): an answer that would ramble closes the field instead of hitting "
        "max_new_tokens. null: unbounded.",
    )
    max_quotes: int | None = Field(
        None, ge=1, description="constrained only. Most evidence quotes the grammar allows. null: unbounded.")
    draft: Literal["auto", "always", "never"] = Field(
        "auto", description="Static decoder only. Decode with drafts verified in one forward pass each: tokens the "
        "grammar forces (jump-forward) and quotes copied from the prompt (prompt lookup); the same greedy tokens "
        "(pipeline/inference/drafting.py). auto: where the decode step runs eagerly (CPU); on CUDA the captured "
        "step-by-step graph is used. always: also on CUDA (an eager loop instead of the graph).",
    )
    cache_implementation: Literal["dynamic", "static"] | None = Field(
        None, description="decoder=generate only. KV cache for generate: null = the model's default (dynamic); "
        "static preallocates it (no per-step copies) and allows compiled decoding."
    )
    prefill_chunk_size: int | None = Field(
        None, ge=64, description="decoder=generate only. Prefill prompts this many tokens at a time: bounds "
        "activation memory so larger batches fit (GPU). null: whole prompts at once.",
    )
    compile: bool = Field(
        False, description="decoder=generate only. Let generate torch.compile the decode step (static cache; GPU).")
    calibrate: bool = Field(
        True, description="Apply the model folder's calibration.json (a temperature / Platt scale fitted on the "
        "validation split at the end of training, or by an evaluation of the validation split) to P(NON_COMPLIANT). "
        "false: the raw probability. The raw value is always kept beside the calibrated one.")


