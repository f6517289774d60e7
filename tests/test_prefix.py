"""Shared-prefix prefill (pipeline/inference/prefix.py): the template's start and the instruction run once per
model and adapter, and every path gives what the unshared path gives (fp32, CPU)."""

import numpy as np
import pytest

from pipeline.formatting import ChatFormatter
from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.engine import Detector
from pipeline.inference.prefix import common_prefix_length, shares_prefix, template_prefix
from test_engine import TEXTS

# Lengths differ (a long one, a one-token one) so rows pad differently after the prefix.
MORE_TEXTS = TEXTS + [TEXTS[0] * 3, "x", " leading space", "\n\nnewlines first"]


def pair(model_dir, **engine):
    """A detector with the shared prefix and one without, on the same model object."""
    cfg = {"dtype": "float32", "max_new_tokens": 24, "batch_size": 3, **engine}
    on = Detector(DetectorModelConfig(name_or_path=str(model_dir)), EngineConfig(**cfg))
    off = Detector(DetectorModelConfig(name_or_path=str(model_dir)), EngineConfig(**cfg, shared_prefix=False),
                   model=on.model, tokenizer=on.tokenizer)
    return on, off


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5, 6], [5, 6]]) == 2
    assert common_prefix_length([[1], [2]]) == 0 and common_prefix_length([]) == 0
    assert shares_prefix([[1, 2, 3], [1, 2, 9, 9]], [1, 2]) and not shares_prefix([[1, 2]], [1, 2])
    assert not shares_prefix([[1, 3, 3]], [1, 2]) and not shares_prefix([[1, 2, 3]], [])


def test_template_prefix_is_the_instruction_and_starts_every_prompt(tiny_mistral):
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32"))
    ids = template_prefix(det.formatter)
    text = det.tokenizer.decode(ids)
    assert ids[0] == det.tokenizer.bos_token_id and det.formatter.system_prompt in text
    assert text.endswith("COMMUNICATION:\n") and len(ids) > 150
    assert det.prefix.ids == ids
    prompts = det.encode_prompts(MORE_TEXTS)
    assert shares_prefix(prompts, ids)
    # Nothing past it is shared: two prompts differ right after it.
    assert common_prefix_length(prompts) == len(ids)


@pytest.mark.parametrize("decoder", ["static", "generate"])
def test_shared_prefix_equals_the_unshared_path(tiny_mistral, decoder):
    """Same greedy tokens and the same verdict probability within 1e-5, through the static decoder and through
    transformers' generate/forward, with the prefix computed once and reused by every batch."""
    on, off = pair(tiny_mistral, decoder=decoder)
    prompts = on.encode_prompts(MORE_TEXTS)
    shared = on.generate(prompts)
    assert len(on.prefix) == 1  # computed once for the three batches
    assert [g.text for g in shared] == [g.text for g in off.generate(prompts)]
    assert [g.new_tokens for g in shared] == [g.new_tokens for g in off.generate(prompts)]
    s_on, s_off = on.score(prompts), off.score(prompts)
    np.testing.assert_allclose(s_on.probability, s_off.probability, atol=1e-5, rtol=0)
    np.testing.assert_allclose(s_on.format_mass, s_off.format_mass, atol=1e-5, rtol=0)
    assert len(on.prefix) == 1 and len(off.prefix) == 0
    # Batch composition does not matter either: one prompt at a time.
    np.testing.assert_allclose([on.score([p]).probability[0] for p in prompts], s_off.probability, atol=1e-5)


def test_static_shared_prefix_equals_transformers_unshared(tiny_mistral):
    """Across paths: the static decoder with the prefix against transformers' generate and forward without."""
    on, _ = pair(tiny_mistral, decoder="static")
    hf = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                  EngineConfig(dtype="float32", max_new_tokens=24, decoder="generate", shared_prefix=False),
                  model=on.model, tokenizer=on.tokenizer)
    prompts = on.encode_prompts(MORE_TEXTS)
    assert [g.text for g in on.generate(prompts)] == [g.text for g in hf.generate(prompts)]
    np.testing.assert_allclose(on.score(prompts).probability, hf.score(prompts).probability, atol=1e-5)


def test_a_batch_without_the_prefix_runs_unshared(tiny_mistral):
    on, off = pair(tiny_mistral)
    prompts = [p[3:] for p in on.encode_prompts(TEXTS)]  # no longer start with the template's tokens
    assert [g.text for g in on.generate(prompts)] == [g.text for g in off.generate(prompts)]
    np.testing.assert_allclose(on.score(prompts).probability, off.score(prompts).probability, atol=1e-5)
    assert len(on.prefix) == 0


@pytest.mark.parametrize("merge_first", [False, True])
def test_shared_prefix_per_adapter_and_invalidated_on_detach(tiny_mistral, adapters, merge_first):
    """Each adapter (and the bare base) gets its own prefix keys/values: per adapter the shared path equals
    the unshared one, adapters give different answers, and detaching forgets that adapter's prefix."""
    on, off = pair(tiny_mistral, batch_size=2)
    prompts = on.encode_prompts(MORE_TEXTS)
    if merge_first:  # a prefix of the bare model computed before any adapter wraps it stays valid
        np.testing.assert_allclose(on.score(prompts).probability, off.score(prompts).probability, atol=1e-5)
    for name, folder in adapters.items():
        on.attach_adapter(name, folder)
    off.model = on.model  # the first attach wrapped the base model in PEFT
    probabilities = {}
    for name in [None, "risk-a", "risk-b", "risk-a", None]:
        with on.use_adapter(name):
            shared, texts = on.score(prompts).probability, [g.text for g in on.generate(prompts)]
        with off.use_adapter(name):  # the same model object: the adapter applies to `off` too
            np.testing.assert_allclose(shared, off.score(prompts).probability, atol=1e-5, rtol=0)
            assert texts == [g.text for g in off.generate(prompts)]
        probabilities[name] = shared
    assert len(on.prefix) == 3  # None, risk-a, risk-b: each computed once
    assert not np.allclose(probabilities["risk-a"], probabilities["risk-b"], atol=1e-3)
    assert not np.allclose(probabilities["risk-a"], probabilities[None], atol=1e-3)
    assert on.detach_adapter("risk-b") and len(on.prefix) == 2
    # Re-attached under the same name with other weights: the old prefix must not be reused.
    with on.use_adapter("risk-b", adapters["risk-a"]):
        np.testing.assert_allclose(on.score(prompts).probability, probabilities["risk-a"], atol=1e-5)
    on.detach_adapter("risk-a")
    on.detach_adapter("risk-b")


def test_shared_prefix_on_the_embedded_llama_model():
    """The embedded SmolLM2 (Llama type, ChatML, system message kept): same tokens and probabilities."""
    on, off = pair("embedded", max_new_tokens=16)
    assert on.decoder is not None and on.formatter.system_role == "system"
    # Its BPE merges the "\n" after "COMMUNICATION:" with a communication's leading whitespace ("\n\n", "\n "):
    # the probes leave that token out of the prefix.
    assert on.tokenizer.decode(on.prefix.ids).endswith("COMMUNICATION:")
    prompts = on.encode_prompts(MORE_TEXTS[:4])
    assert [g.text for g in on.generate(prompts)] == [g.text for g in off.generate(prompts)]
    np.testing.assert_allclose(on.score(prompts).probability, off.score(prompts).probability, atol=1e-5, rtol=0)
    assert len(on.prefix) == 1


def test_formatter_prefix_follows_the_system_prompt(tiny_mistral):
    """A custom instruction (a training artifact's system prompt) is part of the prefix."""
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32"))
    ids = template_prefix(ChatFormatter(det.tokenizer, "Audit this message for guarantees.", "user"))
    assert det.tokenizer.decode(ids).endswith("Audit this message for guarantees.\n\nCOMMUNICATION:\n")


def test_generate_that_cannot_start_from_a_cache_prefills_in_full(tiny_mistral, caplog):
    """transformers' chunked prefill ignores a filled cache: there generation runs unshared, loudly, and
    the verdict probability (a plain forward pass) still shares the prefix."""
    on, off = pair(tiny_mistral, decoder="generate", prefill_chunk_size=64, max_new_tokens=16)
    prompts = on.encode_prompts(TEXTS)
    with caplog.at_level("WARNING"):
        assert [g.text for g in on.generate(prompts)] == [g.text for g in off.generate(prompts)]
    assert len(on.prefix) == 0 and "prefilled in full" in caplog.text
    np.testing.assert_allclose(on.score(prompts).probability, off.score(prompts).probability, atol=1e-5)
    assert len(on.prefix) == 1
