"""GPU paths on a tiny random Mistral with the real v3 tokenizer: QLoRA and ZeRO-2 through Ray Train,
on two GPUs QLoRA under DDP, ZeRO-2/3 and a resume (skipped below 2 GPUs), the engine in bf16 on CUDA.
Skipped on CPU machines; on the GPU machine:

    python -m pytest -m gpu tests/test_gpu.py
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.engine import Detector
from test_engine import TEXTS
from test_prefix import MORE_TEXTS
from test_train import ROOT, lora_tensors, prepared, train_cfg  # noqa: F401 - `prepared` is a fixture

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("variant", [
    ["quantization.load_in_4bit=true"],
    ["quantization.load_in_4bit=false", f"train.deepspeed={ROOT / 'ray_cluster/deepspeed/zero2.json'}"],
    ["quantization.load_in_4bit=false", "train.fused_lm_head=false", "train.verdict_loss_weight=30"],
], ids=["qlora", "zero2_lora", "lora_verdict_weight"])
def test_gpu_training_through_ray_train_learns_and_writes_an_adapter(variant, prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    cfg = train_cfg(prepared, tiny_mistral, tmp_path, "ray.use_gpu=true", "ray.num_workers=1",
                    "ray.resources_per_worker={CPU: 1, GPU: 1}", "train.precision=bf16", *variant)
    m = run_training(cfg).metrics
    assert m["global_step"] == 4 and m["eval_loss_last"] < m["eval_loss_first"]
    assert m["peak_gpu_memory_gb"] and m["peak_gpu_memory_gb"] > 0
    bs = [v for k, v in lora_tensors(Path(cfg.output_dir)).items() if "lora_B" in k]
    assert len(bs) == 2 * 7 and all(v.abs().sum() > 0 for v in bs)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


two_gpus = pytest.mark.skipif(_gpus() < 2, reason="needs 2 GPUs (nvidia-h200-x2)")


@two_gpus
@pytest.mark.parametrize("variant", [
    ["quantization.load_in_4bit=true"],
    ["quantization.load_in_4bit=false", f"train.deepspeed={ROOT / 'ray_cluster/deepspeed/zero3.json'}"],
    ["quantization.load_in_4bit=false", f"train.deepspeed={ROOT / 'ray_cluster/deepspeed/zero2.json'}"],
], ids=["qlora_ddp", "zero3_lora", "zero2_lora"])
def test_two_gpu_workers_train_one_adapter_and_report_each_gpu(variant, prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    cfg = train_cfg(prepared, tiny_mistral, tmp_path, "ray.use_gpu=true", "ray.num_workers=2",
                    "ray.resources_per_worker={CPU: 1, GPU: 1}", "train.precision=bf16", *variant)
    m = run_training(cfg).metrics
    assert m["global_step"] == 4 and m["num_workers"] == 2 and m["eval_loss_last"] < m["eval_loss_first"]
    peaks = m["peak_gpu_memory_gb_per_worker"]
    assert len(peaks) == 2 and all(p and p > 0 for p in peaks)
    assert [c["step"] for c in m["checkpoints"]] == [2, 4] and all(c["bytes"] > 0 for c in m["checkpoints"])
    bs = [v for k, v in lora_tensors(Path(cfg.output_dir)).items() if "lora_B" in k]
    assert len(bs) == 2 * 7 and all(v.abs().sum() > 0 for v in bs)  # ZeRO-3 gathered the shards on save


@two_gpus
def test_two_gpu_qlora_resumes_from_its_checkpoint_after_a_worker_failure(prepared, tiny_mistral, tmp_path):
    from pipeline.train.run import run_training

    common = [prepared, tiny_mistral, tmp_path, "ray.use_gpu=true", "ray.num_workers=2",
              "ray.resources_per_worker={CPU: 1, GPU: 1}", "train.precision=bf16", "quantization.load_in_4bit=true"]
    ref = run_training(train_cfg(*common)).metrics
    m = run_training(train_cfg(*common, "train.fault_drill_step=2", "ray.max_failures=1",
                               f"output_dir={tmp_path}/resumed", "ray.run_name=resumed")).metrics
    assert m["resumed_from_step"] == 2 and m["global_step"] == ref["global_step"] == 4
    after = [e["loss"] for e in m["train_losses"] if e["step"] > 2]
    assert after == pytest.approx([e["loss"] for e in ref["train_losses"] if e["step"] > 2], abs=2e-2)


def test_cuda_engine_is_deterministic_batch_invariant_and_matches_stock_sdpa(tiny_mistral):
    model = DetectorModelConfig(name_or_path=str(tiny_mistral))
    base = dict(device="cuda", dtype="float32", max_new_tokens=16, batch_size=3)
    ref = Detector(model, EngineConfig(**base, attn_implementation="sdpa", decoder="generate"))
    gqa = Detector(model, EngineConfig(**base))
    assert str(gqa.device).startswith("cuda") and gqa.decoder.graphs  # the CUDA-graph loop by default
    texts = TEXTS * 2
    prompts = gqa.encode_prompts(texts)
    batched = [g.text for g in gqa.generate(prompts)]
    assert batched == [g.text for g in gqa.generate(prompts)] == [gqa.generate([ids])[0].text for ids in prompts]
    assert batched == [g.text for g in ref.generate(prompts)]
    p = gqa.score(prompts).probability
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(p, ref.score(prompts).probability, atol=1e-4)


@pytest.mark.parametrize("rows,width", [(1, 1408), (7, 300), (256, 1408)])
def test_cuda_triton_decode_attention_is_as_close_to_float32_as_sdpa(rows, width):
    """Mistral-7B's shapes (8 key/value heads of 4 query heads, head size 128): one row (the cache split over many
    programs), a few rows of a short cache, a full batch (one split). bf16 in, compared with float32 attention."""
    import torch

    from pipeline.inference.attention import length_masked_attention as reference
    from pipeline.inference.decode_attention import attend, plan_splits

    torch.manual_seed(0)
    q = torch.randn(rows, 8, 4, 128, device="cuda", dtype=torch.bfloat16)
    keys, values = torch.randn(2, rows, 8, width, 128, device="cuda", dtype=torch.bfloat16).unbind(0)
    positions = torch.randint(0, width, (rows,), device="cuda")
    positions[0] = width - 1
    scale = 128 ** -0.5
    exact = reference(q.float(), keys.float(), values.float(), positions, scale)
    sdpa_error = (reference(q, keys, values, positions, scale).float() - exact).abs().max().item()
    got = attend(q, keys, values, positions, scale)
    assert got.dtype == torch.bfloat16 and got.shape == q.shape
    assert (got.float() - exact).abs().max().item() <= max(2 * sdpa_error, 1e-2)
    if rows == 1:
        assert plan_splits(1, 8, width, torch.cuda.get_device_properties(0).multi_processor_count)[0] > 1


def test_cuda_bf16_static_cache_generation_runs_to_the_budget(tiny_mistral):
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(device="cuda", dtype="bfloat16", max_new_tokens=16,
                                batch_size=4, decoder="generate", cache_implementation="static",
                                prefill_chunk_size=64))
    gens = det.generate(det.encode_prompts(TEXTS))
    assert len(gens) == 3 and all(0 < g.new_tokens <= 16 for g in gens)


def test_cuda_graph_replay_equals_the_eager_static_loop_in_bf16(tiny_mistral):
    from pipeline.inference.decoder import StaticDecoder

    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(device="cuda", dtype="bfloat16", max_new_tokens=24))
    prompts = det.encode_prompts(TEXTS * 3)
    pad = det.tokenizer.pad_token_id
    eager = StaticDecoder(det.model, graphs=False).generate(prompts, 24, det.eos_ids, pad)
    graphed = det.decoder.generate(prompts, 24, det.eos_ids, pad)
    assert graphed == eager
    assert det.decoder.generate(prompts[:4], 24, det.eos_ids, pad) == eager[:4]  # a second captured shape
    assert len(det.decoder._captured) == 2
    longer = det.encode_prompts([TEXTS[1] * 4] * 12)  # the cache grows: graphs are dropped and captured anew
    assert det.decoder.generate(longer, 24, det.eos_ids, pad) == StaticDecoder(det.model, graphs=False).generate(
        longer, 24, det.eos_ids, pad)
    assert det.decoder.generate(prompts, 24, det.eos_ids, pad) == eager


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_shared_prefix_across_adapters_equals_the_unshared_path(tiny_mistral, adapters, dtype):
    """Per adapter (and the bare base) the shared prefix gives the unshared probabilities, through the CUDA-graph
    loop: within 1e-4 and the same tokens in fp32, within bf16 rounding in bf16."""
    model = DetectorModelConfig(name_or_path=str(tiny_mistral))
    base = dict(device="cuda", dtype=dtype, max_new_tokens=16, batch_size=3)
    on = Detector(model, EngineConfig(**base))
    off = Detector(model, EngineConfig(**base, shared_prefix=False), model=on.model, tokenizer=on.tokenizer)
    assert on.decoder.graphs
    for name, folder in adapters.items():
        on.attach_adapter(name, folder)
    off.model = on.model  # the first attach wrapped the base model in PEFT
    prompts = on.encode_prompts(MORE_TEXTS)
    probabilities = {}
    for name in [None, "risk-a", "risk-b", "risk-a", None]:
        with on.use_adapter(name):
            p_on, texts_on = on.score(prompts).probability, [g.text for g in on.generate(prompts)]
        with off.use_adapter(name):
            p_off, texts_off = off.score(prompts).probability, [g.text for g in off.generate(prompts)]
        if dtype == "float32":
            np.testing.assert_allclose(p_on, p_off, atol=1e-4, rtol=0)
            assert texts_on == texts_off
        else:
            np.testing.assert_allclose(p_on, p_off, atol=3e-2, rtol=0)
        probabilities[name] = p_on
    assert len(on.prefix) == 3  # the bare base, risk-a, risk-b: each computed once
    assert not np.allclose(probabilities["risk-a"], probabilities["risk-b"], atol=1e-3)
    assert on.detach_adapter("risk-a") and len(on.prefix) == 2


def test_cuda_memory_batching_sizes_batches_from_free_memory(tiny_mistral):
    """On GPU the batch is what free memory holds (capped), not engine.batch_size; answers do not change."""
    model = DetectorModelConfig(name_or_path=str(tiny_mistral))
    base = dict(device="cuda", dtype="float32", max_new_tokens=16, batch_size=2)
    auto = Detector(model, EngineConfig(**base, max_memory_batch=64))
    fixed = Detector(model, EngineConfig(**base, memory_batching=False), model=auto.model, tokenizer=auto.tokenizer)
    prompts = auto.encode_prompts(MORE_TEXTS * 2)
    lengths = [len(p) for p in prompts]
    assert [len(b) for b in auto._batches(lengths, 16)] == [len(prompts)]  # a tiny model: all 14 fit at once
    assert [len(b) for b in fixed._batches(lengths, 16)] == [2] * 7
    auto.cfg = EngineConfig(**base, max_memory_batch=5)
    assert [len(b) for b in auto._batches(lengths, 16)] == [5, 5, 4]
    assert [g.text for g in auto.generate(prompts)] == [g.text for g in fixed.generate(prompts)]
    np.testing.assert_allclose(auto.score(prompts).probability, fixed.score(prompts).probability, atol=1e-4)


def test_cuda_graph_replay_under_the_grammar_equals_the_eager_loop(tiny_mistral):
    """The bitmask applied after the captured step's replay gives the eager constrained tokens, for two batch
    shapes (two captured graphs), and the drafted eager loop gives them too."""
    from pipeline.inference.decoder import StaticDecoder

    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                   EngineConfig(device="cuda", dtype="float32", max_new_tokens=96, max_field_chars=16, max_quotes=2))
    assert det.decoder.graphs and det.grammar is not None and not det._drafting()  # auto: graphs on CUDA
    prompts = det.encode_prompts(TEXTS * 3)
    pad, eos = det.tokenizer.pad_token_id, det.eos_ids
    eager = StaticDecoder(det.model, graphs=False)
    expected = eager.generate(prompts, 96, eos, pad, det.grammar)
    assert det.decoder.generate(prompts, 96, eos, pad, det.grammar) == expected
    assert det.decoder.generate(prompts[:4], 96, eos, pad, det.grammar) == expected[:4]  # a second batch shape
    assert len(det.decoder._captured) == 2
    assert eager.generate(prompts, 96, eos, pad, det.grammar, draft=True) == expected
    gens = det.generate(prompts)
    # A random tiny model fills the bounded fields with one character per token: 96 tokens cut every answer,
    # which is reported as truncated; with room to finish, every answer is a verdict.
    assert all(g.truncated for g in gens)
    roomy = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                     EngineConfig(device="cuda", dtype="float32", max_new_tokens=320, max_field_chars=16, max_quotes=2),
                     model=det.model, tokenizer=det.tokenizer)
    verdicts = [json.loads(g.text) for g in roomy.generate(prompts) if g.finished]
    assert len(verdicts) == len(prompts) and all(v["final_verdict"] in ("COMPLIANT", "NON_COMPLIANT") for v in verdicts)
    assert [g.text for g in gens] == [det.tokenizer.decode(t[:-1] if t[-1] in eos else t, skip_special_tokens=True)
                                      for t in expected]


def test_cuda_fp8_prefill_is_close_to_bf16_and_the_graph_decodes_after_it(tiny_mistral):
    """float8 prefill on the GPU (torch._scaled_mm, compiled activation quantization): probabilities within 0.02
    of the bf16 prefill's, and the captured decode graph continues it exactly as the eager step does."""
    from pipeline.inference.decoder import StaticDecoder

    cfg = dict(device="cuda", dtype="bfloat16", max_new_tokens=24)
    on = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(**cfg, fp8_prefill=True))
    off = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(**cfg),
                   model=on.model, tokenizer=on.tokenizer)
    assert on.decoder.graphs and on.decoder.fp8 is not None
    prompts = on.encode_prompts(MORE_TEXTS * 2)
    p_on, p_off = on.score(prompts).probability, off.score(prompts).probability
    assert not np.array_equal(p_on, p_off)
    np.testing.assert_allclose(p_on, p_off, atol=0.02, rtol=0)
    pad = on.tokenizer.pad_token_id
    eager = StaticDecoder(on.model, graphs=False, fp8=True)
    assert on.decoder.generate(prompts, 24, on.eos_ids, pad) == eager.generate(prompts, 24, on.eos_ids, pad)
