"""The inference engine on a tiny random Mistral with the real v3 tokenizer."""

import numpy as np
import pytest

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.engine import Detector
from pipeline.formatting import ChatFormatter, answer_json

TEXTS = [
    "Client: Is the fund safe?\nAdvisor: I guarantee you will not lose money.",
    "Advisor: Please keep this on the firm email so it is recorded. " * 6,
    "Client: hi",
]


@pytest.fixture(scope="module")
def detector(tiny_mistral):
    return Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32", max_new_tokens=16, batch_size=2))


def test_prompt_ids_are_the_training_prompt(detector, tiny_mistral):
    enc = ChatFormatter(detector.tokenizer).encode(TEXTS[0], answer_json({
        "final_verdict": "COMPLIANT", "executive_summary": "s", "rule_violated": "None", "compliance_topic": "None",
        "severity": "NONE", "evidence_list": [], "reasoning_trace": "r"}))
    assert detector.encode_prompts([TEXTS[0]])[0] == enc.input_ids[:enc.prompt_tokens]


def test_verdict_prefix_and_decision_tokens(detector):
    tok = detector.tokenizer
    assert tok.decode(detector._verdict_prefix).strip() == '{"final_verdict": "'.strip()
    c, nc = detector._decision
    assert c != nc
    assert "COMPLIANT".startswith(tok.decode([c]).strip()) and "NON_COMPLIANT".startswith(tok.decode([nc]).strip())


def test_batched_greedy_equals_one_at_a_time_and_is_deterministic(detector):
    prompts = detector.encode_prompts(TEXTS)
    batched = detector.generate(prompts)
    again = detector.generate(prompts)
    single = [detector.generate([p])[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in again] == [g.text for g in single]
    assert all(g.new_tokens <= 16 and g.prompt_tokens > 100 for g in batched)


def test_probability_is_a_distribution_and_batch_invariant(detector):
    prompts = detector.encode_prompts(TEXTS)
    scores = detector.score(prompts)
    p = scores.probability
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
    one = np.array([detector.score([ids]).probability[0] for ids in prompts])
    np.testing.assert_allclose(p, one, atol=1e-4)
    assert ((scores.format_mass > 0) & (scores.format_mass <= 1)).all()
    # The static decoder's right-padded prefill gives transformers' left-padded forward pass.
    hf = Detector(DetectorModelConfig(name_or_path=detector.model_cfg.name_or_path), EngineConfig(dtype="float32", decoder="generate"), model=detector.model,
                  tokenizer=detector.tokenizer)
    assert detector.decoder is not None and hf.decoder is None
    np.testing.assert_allclose(p, hf.score(hf.encode_prompts(TEXTS)).probability, atol=1e-5)


def test_batches_group_by_length_and_respect_caps(detector):
    detector.cfg = EngineConfig(batch_size=3, max_batch_tokens=1000)
    batches = detector._batches([100, 900, 120, 110, 500, 130], extra=0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) <= 3 for b in batches)
    assert batches[0] == [1]  # 900 tokens: a second row would exceed 1000 padded tokens
    detector.cfg = EngineConfig(max_new_tokens=16, batch_size=2)


def test_cuda_requested_without_gpu_is_a_clear_error(tiny_mistral):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match="engine.device=cuda"):
        Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(device="cuda"))


@pytest.mark.parametrize("cache", [None, "static"])
def test_gqa_decode_attention_matches_sdpa(tiny_mistral, cache):
    """Same greedy tokens and probabilities with the grouped decode kernel as with stock SDPA."""
    texts = TEXTS * 2
    ref = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32", max_new_tokens=16, batch_size=3, attn_implementation="sdpa",
                                decoder="generate"))
    gqa = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32", max_new_tokens=16, batch_size=3, decoder="generate",
                                attn_implementation="sdpa_gqa", cache_implementation=cache))
    assert gqa.model.config._attn_implementation == "sdpa_gqa"
    prompts = gqa.encode_prompts(texts)
    assert prompts == ref.encode_prompts(texts)
    assert [g.text for g in gqa.generate(prompts)] == [g.text for g in ref.generate(prompts)]
    np.testing.assert_allclose(gqa.score(prompts).probability, ref.score(prompts).probability, atol=1e-5)


def test_static_decoder_matches_generate_and_stops_each_row_at_its_eos(detector):
    """The static-cache loop gives transformers' greedy tokens, row by row, with per-row stops."""
    from pipeline.inference.decoder import StaticDecoder

    assert detector.decoder is not None  # engine.decoder=auto picks it for Mistral
    prompts = detector.encode_prompts(TEXTS + [TEXTS[0] * 3])
    hf = Detector(DetectorModelConfig(name_or_path=detector.model_cfg.name_or_path), EngineConfig(dtype="float32", max_new_tokens=24, decoder="generate"),
                  model=detector.model, tokenizer=detector.tokenizer)
    full = hf._hf_generate(prompts)
    # An "EOS" the model emits mid-answer in some rows but not others exercises the per-row stop.
    stop = full[0][5]
    expected = []
    for row in full:
        end = row.index(stop) + 1 if stop in row else len(row)
        expected.append(row[:end])
    dec = StaticDecoder(detector.model, graphs=False)
    pad = detector.tokenizer.pad_token_id
    assert dec.generate(prompts, 24, [stop], pad) == expected
    assert any(len(r) < 24 for r in expected) and any(len(r) == 24 for r in expected)
    assert dec.generate(prompts, 24, detector.eos_ids, pad) == full  # the cache is reused across batches
    assert dec.generate(prompts[2:3], 24, detector.eos_ids, pad) == full[2:3]


def test_static_decoder_refuses_sliding_window_models_clearly(detector):
    from transformers import MistralConfig, MistralForCausalLM

    from pipeline.inference.decoder import unsupported_reason

    cfg = MistralConfig(**{**detector.model.config.to_dict(), "sliding_window": 8})
    sliding = MistralForCausalLM(cfg).eval()
    assert "sliding_window" in unsupported_reason(sliding)
    with pytest.raises(ValueError, match="engine.decoder=static cannot run this model"):
        Detector(DetectorModelConfig(name_or_path=detector.model_cfg.name_or_path), EngineConfig(dtype="float32", decoder="static"), model=sliding, tokenizer=detector.tokenizer)
    assert Detector(DetectorModelConfig(name_or_path=detector.model_cfg.name_or_path), EngineConfig(), model=sliding, tokenizer=detector.tokenizer).decoder is None


def test_artifact_source_reads_the_recorded_config_and_prompt_format(tiny_mistral, tmp_path):
    """A training artifact names its base by the configured model, not the trainer's local path."""
    import json

    from pipeline.inference.engine import resolve_source

    art = tmp_path / "artifact"
    art.mkdir()
    (art / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere/base"}))
    (art / "training_config.json").write_text(json.dumps({
        "config": {"model": {"name_or_path": str(tiny_mistral)}, "ray": {"run_name": "run-7"}},
        "data": {"format": {"system_prompt": "Audit this.", "system_role": "user"}},
    }))
    src = resolve_source(str(art))
    assert (src.base, src.adapter, src.version) == (str(tiny_mistral), str(art), "run-7")
    assert (src.system_prompt, src.system_role) == ("Audit this.", "user")
    assert src.tokenizer == str(tiny_mistral)  # no tokenizer saved in the artifact: the base's


def test_calibration_is_applied_per_model_folder_and_adapter(tiny_mistral, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pipeline.evaluate.calibration import Calibration

    def scale(t, b=0.0):
        return Calibration(method="platt", temperature=t, bias=b, n_fit=10, nll_before=1, nll_after=1,
                           ece_before=0.2, ece_after=0.1)

    base = tmp_path / "base"
    shutil.copytree(tiny_mistral, base)
    scale(2.0).save(base)
    adapter = tmp_path / "adapter"
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(r=2, target_modules=["q_proj"]))
    lora.save_pretrained(str(adapter))
    scale(0.5, 1.0).save(adapter)
    prompts = None

    def check(detector, expected):
        scores = detector.score(prompts)
        raw = scores.raw_probability
        want = raw if expected is None else expected.apply(raw)
        np.testing.assert_allclose(scores.probability, want, atol=1e-12)
        return raw

    engine = EngineConfig(dtype="float32", decoder="generate")
    detector = Detector(DetectorModelConfig(name_or_path=str(base)), engine)
    prompts = detector.encode_prompts(TEXTS)
    assert detector.info["calibrated"]
    raw = check(detector, scale(2.0))
    assert not np.allclose(detector.score(prompts).probability, raw)  # T=2 really moved the scores
    detector.attach_adapter("a", str(adapter))
    with detector.use_adapter("a"):
        check(detector, scale(0.5, 1.0))
    with detector.use_adapter(None):
        check(detector, scale(2.0))
    assert detector.detach_adapter("a") and "a" not in detector._calibrations
    off = Detector(DetectorModelConfig(name_or_path=str(base)), engine.model_copy(update={"calibrate": False}))
    assert not off.info["calibrated"]
    check(off, None)
