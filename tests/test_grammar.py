"""Grammar-constrained decoding (pipeline/inference/grammar.py) and draft-and-verify decoding
(pipeline/inference/drafting.py) on a tiny random Mistral with the real v3 tokenizer, fp32 on the CPU."""

import json

import pytest

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.engine import Detector, Generation
from pipeline.inference.parsing import parse_verdict
from pipeline.inference.verdicts import read_verdict
from pipeline.schema import VERDICT_FIELDS
from test_engine import TEXTS

# Evidence a model would copy: the prompt-lookup drafts find these tokens in the prompt.
QUOTED = TEXTS + ["Advisor: This note is guaranteed to return 12% a year, no risk at all, trust me on this one."]
BOUNDED = dict(dtype="float32", batch_size=4, max_field_chars=24, max_quotes=2)


@pytest.fixture(scope="module")
def bounded(tiny_mistral):
    """Text fields bounded, so a random model's answers end well inside the budget."""
    return Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                    EngineConfig(**BOUNDED, max_new_tokens=320, draft="never"))


def test_every_answer_is_a_schema_valid_verdict_under_the_grammar(bounded):
    prompts = bounded.encode_prompts(QUOTED)
    gens = bounded.generate(prompts)
    assert all(g.finished and g.constrained for g in gens), [g.new_tokens for g in gens]
    for g, text in zip(gens, QUOTED):
        record = read_verdict(g, text)
        assert record.parsed.status == "ok", (record.parsed.error, g.text)
        raw = json.loads(g.text)  # strict JSON, keys in the schema's order
        assert list(raw) == list(VERDICT_FIELDS)
        assert raw["final_verdict"] in ("COMPLIANT", "NON_COMPLIANT")
        assert all(1 <= len(q) <= 24 for q in raw["evidence_list"]) and len(raw["evidence_list"]) <= 2
    # The same model without the grammar never writes a verdict.
    free = Detector(DetectorModelConfig(name_or_path=bounded.model_cfg.name_or_path),
                    EngineConfig(**BOUNDED, max_new_tokens=64, constrained=False), model=bounded.model,
                    tokenizer=bounded.tokenizer)
    assert free.grammar is None
    assert not any(read_verdict(g, t).parsed.valid for g, t in zip(free.generate(prompts), QUOTED))


@pytest.mark.parametrize("grammar_on", [True, False], ids=["constrained", "unconstrained"])
def test_drafted_decoding_gives_the_step_by_step_greedy_tokens(bounded, grammar_on):
    """Jump-forward and prompt-lookup drafts, verified in one pass each, change no token (fp32)."""
    from pipeline.inference.decoder import StaticDecoder

    dec = StaticDecoder(bounded.model, graphs=False)
    prompts = bounded.encode_prompts(QUOTED)
    # A prompt that repeats itself gives lookup drafts the random model does accept.
    prompts.append(bounded.encode_prompts(["hello world " * 40])[0])
    pad, grammar = bounded.tokenizer.pad_token_id, bounded.grammar if grammar_on else None
    for budget in (7, 160):
        stepwise = dec.generate(prompts, budget, bounded.eos_ids, pad, grammar)
        drafted = dec.generate(prompts, budget, bounded.eos_ids, pad, grammar, draft=True)
        assert drafted == stepwise
        assert all(len(t) <= budget for t in drafted)
    if grammar_on:  # (free, the random model's answers never repeat the prompt: no drafts, one token a pass)
        assert dec.draft_stats["drafted"] > 0 and dec.draft_stats["accepted"] > 0  # some forced tokens taken


def test_drafted_rounds_are_fewer_than_tokens_when_drafts_are_taken(bounded):
    from pipeline.inference.decoder import StaticDecoder

    dec = StaticDecoder(bounded.model, graphs=False)
    prompts = bounded.encode_prompts(QUOTED)
    out = dec.generate(prompts, 160, bounded.eos_ids, bounded.tokenizer.pad_token_id, bounded.grammar, draft=True)
    tokens = sum(len(t) - 1 for t in out)  # the first token of each row comes from the prefill
    assert dec.draft_stats["rounds"] == tokens - dec.draft_stats["accepted"] < tokens


def test_engine_drafting_and_transformers_generate_match_the_static_loop_under_the_grammar(bounded):
    prompts = bounded.encode_prompts(QUOTED)
    expected = [g.text for g in bounded.generate(prompts)]
    drafted = Detector(DetectorModelConfig(name_or_path=bounded.model_cfg.name_or_path),
                       EngineConfig(**BOUNDED, max_new_tokens=320), model=bounded.model, tokenizer=bounded.tokenizer)
    assert drafted._drafting()  # engine.draft=auto on the CPU
    assert [g.text for g in drafted.generate(prompts)] == expected
    hf = Detector(DetectorModelConfig(name_or_path=bounded.model_cfg.name_or_path),
                  EngineConfig(**BOUNDED, max_new_tokens=320, decoder="generate"), model=bounded.model,
                  tokenizer=bounded.tokenizer)
    assert hf.decoder is None and [g.text for g in hf.generate(prompts)] == expected


def test_an_answer_cut_by_the_budget_is_truncated_not_a_parse_error(tiny_mistral):
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32", max_new_tokens=16))
    gens = det.generate(det.encode_prompts(TEXTS))
    for g, text in zip(gens, TEXTS):
        assert g.truncated and g.new_tokens == 16
        record = read_verdict(g, text)
        assert record.parsed.status == "truncated" and not record.parsed.valid
        assert "new-token budget" in record.parsed.error and g.text.startswith('{"final_verdict": "')
        assert record.columns()["parse_status"] == "truncated" and record.columns()["finished"] is False
    # What the cut answer still says is kept: the verdict comes first.
    cut = Generation('{"final_verdict": "NON_COMPLIANT", "executive_summary": "Promises no l', 900, 16, False, 1.0, True)
    record = read_verdict(cut, "Advisor: you will not lose money")
    assert record.parsed.status == "truncated" and record.verdict["final_verdict"] == "NON_COMPLIANT"
    # Text from elsewhere is still read tolerantly: the same cut answer alone is a verdict with problems.
    assert parse_verdict(cut.text).status == "invalid_schema"


def test_the_grammar_forces_a_compliant_verdicts_labels(bounded):
    """After a COMPLIANT verdict's summary, rule, topic and severity are forced: one jump-forward draft."""
    from pipeline.inference.grammar import RowConstraint

    tok = bounded.tokenizer
    row = RowConstraint(bounded.grammar, 1)
    for t in tok.encode('{"final_verdict": "COMPLIANT", "executive_summary": "fine"', add_special_tokens=False):
        assert row.accept(0, t)
    forced = tok.decode(row.forced(0))
    assert forced.startswith(', "rule_violated": "None", "compliance_topic": "None", "severity": "NONE"'), forced
    row = RowConstraint(bounded.grammar, 1)
    for t in tok.encode('{"final_verdict": "NON_COMPLIANT", "executive_summary": "x", "rule_violated": "r", '
                        '"compliance_topic": "t", "severity": "', add_special_tokens=False):
        assert row.accept(0, t)
    assert row.valid_prefix(0, [bounded.eos_ids[0]]) == 0  # the object is open: no end of sequence yet
    for severity, allowed in (("NONE", False), ("HIGH", True)):  # a violation has a severity
        ids = tok.encode('{"final_verdict": "NON_COMPLIANT", "executive_summary": "x", "rule_violated": "r", '
                         f'"compliance_topic": "t", "severity": "{severity}"', add_special_tokens=False)
        probe = RowConstraint(bounded.grammar, 1)
        assert (probe.valid_prefix(0, ids) == len(ids)) is allowed, severity
