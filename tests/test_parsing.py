"""parse_verdict on a corpus of real-looking and malformed detector outputs: exact status and verdict."""

from __future__ import annotations

import json

import pytest

from pipeline.inference.parsing import STATUSES, VALID_STATUSES, ParsedVerdict, parse_verdict, verdict_label
from pipeline.schema import VERDICT_FIELDS

NC = {
    "final_verdict": "NON_COMPLIANT",
    "executive_summary": "Advisor Lucía Raman guaranteed the client would not lose money.",
    "rule_violated": "FINRA Rule 2150(b)",
    "compliance_topic": "Guarantees Against Loss",
    "severity": "HIGH",
    "evidence_list": ["If it drops, I'll cover the loss myself.", "You can't lose on this one."],
    "reasoning_trace": "The advisor promised to cover losses, which FINRA Rule 2150(b) prohibits.",
}
C = {
    "final_verdict": "COMPLIANT",
    "executive_summary": "The advisor explained the redemption limits accurately.",
    "rule_violated": "None",
    "compliance_topic": "None",
    "severity": "NONE",
    "evidence_list": ["It isn't traded on an exchange."],
    "reasoning_trace": "No misstatement; the limits were disclosed.",
}


def dump(base: dict, **changes) -> str:
    return json.dumps({**base, **changes}, ensure_ascii=False)


NC_TEXT, C_TEXT = dump(NC), dump(C)
CUT_IN_TRACE = NC_TEXT[: NC_TEXT.index("which FINRA")]
CUT_BEFORE_TRACE = NC_TEXT[: NC_TEXT.index('"reasoning_trace"')]
CUT_IN_KEY = NC_TEXT[: NC_TEXT.index('"reasoning_trace"') + 8]

# (case id, raw output, expected status, expected final_verdict)
CORPUS = [
    ("clean_nc", NC_TEXT, "ok", "NON_COMPLIANT"),
    ("clean_c", C_TEXT, "ok", "COMPLIANT"),
    ("pretty_printed", json.dumps(NC, indent=2), "ok", "NON_COMPLIANT"),
    ("fence_and_prose", f"Here is my analysis:\n```json\n{NC_TEXT}\n```\nLet me know if you need more.", "ok",
     "NON_COMPLIANT"),
    ("prose_no_fence", f"Verdict follows. {C_TEXT} That is all.", "ok", "COMPLIANT"),
    ("two_objects_first_wins", f"{C_TEXT}\n{NC_TEXT}", "ok", "COMPLIANT"),
    ("non_verdict_object_first", '{"thinking": "the advisor says {x}"}\n' + NC_TEXT, "ok", "NON_COMPLIANT"),
    ("wrapped_in_object", json.dumps({"result": NC}), "ok", "NON_COMPLIANT"),
    ("eos_left_in", NC_TEXT + "</s>", "ok", "NON_COMPLIANT"),
    ("bom_and_im_end", "\ufeff" + C_TEXT + "<|im_end|>\n", "ok", "COMPLIANT"),
    ("braces_inside_strings", dump(NC, evidence_list=['he said {this}', 'a "}{" pair']), "ok",
     "NON_COMPLIANT"),
    ("unicode", dump(NC, executive_summary="Zhāng 张 promised 💰 returns — “guaranteed”"), "ok",
     "NON_COMPLIANT"),
    ("escaped_quotes", dump(NC, evidence_list=['He said "guaranteed" twice.']), "ok", "NON_COMPLIANT"),
    ("truncated_in_trace", CUT_IN_TRACE, "repaired", "NON_COMPLIANT"),
    ("truncated_in_trace_with_eos", CUT_IN_TRACE + "<|eot_id|>", "repaired", "NON_COMPLIANT"),
    ("truncated_before_trace", CUT_BEFORE_TRACE, "invalid_schema", "NON_COMPLIANT"),
    ("truncated_in_key", CUT_IN_KEY, "invalid_schema", "NON_COMPLIANT"),
    ("truncated_after_verdict", '{"final_verdict": "COMPLIANT", "executive_su', "invalid_schema",
     "COMPLIANT"),
    ("truncated_in_verdict", '{"final_verdict": "NON_COMP', "invalid_schema", None),
    ("single_quotes", NC_TEXT.replace('"', "'"), "repaired", "NON_COMPLIANT"),
    ("python_repr", str({**NC, "executive_summary": "The advisor's promise"}), "repaired", "NON_COMPLIANT"),
    ("python_none", str({**C, "rule_violated": None}), "repaired", "COMPLIANT"),
    ("trailing_commas", NC_TEXT.replace('"]', '",]').replace('."}', '.",}'), "repaired", "NON_COMPLIANT"),
    ("smart_quotes", NC_TEXT.replace('"', "\u201c", 1).replace(': "', ": \u201c").replace('", ', "\u201d, "),
     "repaired", "NON_COMPLIANT"),
    ("raw_newline_in_string", NC_TEXT.replace("which FINRA", "which\nFINRA"), "repaired", "NON_COMPLIANT"),
    ("array_of_one_verdict", "[" + NC_TEXT + "]", "repaired", "NON_COMPLIANT"),
    ("enum_spellings", dump(NC, final_verdict="Non-Compliant", severity="high"), "repaired", "NON_COMPLIANT"),
    ("evidence_one_string", dump(NC, evidence_list="You can't lose on this one."), "repaired",
     "NON_COMPLIANT"),
    ("null_rule_on_compliant", dump(C, rule_violated=None, compliance_topic="N/A"), "repaired", "COMPLIANT"),
    ("extra_key", dump(C, confidence=0.93), "repaired", "COMPLIANT"),
    ("key_spelling", dump(NC).replace('"final_verdict"', '"Final Verdict"'), "repaired", "NON_COMPLIANT"),
    ("missing_final_verdict", json.dumps({k: v for k, v in NC.items() if k != "final_verdict"}),
     "invalid_schema", None),
    ("unknown_verdict", dump(NC, final_verdict="NEEDS_REVIEW"), "invalid_schema", None),
    ("verdict_not_text", dump(NC, final_verdict=True), "invalid_schema", None),
    ("inconsistent_severity", dump(C, severity="HIGH"), "invalid_schema", "COMPLIANT"),
    ("violation_without_evidence", dump(NC, evidence_list=[]), "invalid_schema", "NON_COMPLIANT"),
    ("unknown_severity", dump(NC, severity="CRITICAL"), "invalid_schema", "NON_COMPLIANT"),
    ("evidence_numbers", dump(NC, evidence_list=[1, 2]), "invalid_schema", "NON_COMPLIANT"),
    ("empty_string", "", "parse_error", None),
    ("whitespace_only", "  \n\t ", "parse_error", None),
    ("eos_only", "</s>", "parse_error", None),
    ("refusal_prose", "I'm sorry, but I can't help with reviewing this communication.", "parse_error", None),
    ("garbage", "}{][,:\"'\\", "parse_error", None),
    ("array_of_strings", '["NON_COMPLIANT", "HIGH"]', "parse_error", None),
    ("bare_label", "NON_COMPLIANT", "parse_error", None),
    ("mismatched_brackets", '{"final_verdict": "COMPLIANT"]', "parse_error", None),
    ("deep_nesting", "[" * 100_000 + "]" * 100_000, "parse_error", None),
    ("many_braces", "{" * 5_000, "parse_error", None),
]


@pytest.mark.parametrize("case, text, status, verdict", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_status_and_verdict(case, text, status, verdict):
    parsed = parse_verdict(text)
    assert (parsed.status, verdict_label(parsed)) == (status, verdict), parsed.error
    assert parsed.valid == (status in VALID_STATUSES)
    assert bool(parsed.error) == (status != "ok")
    if parsed.verdict is not None:
        assert tuple(parsed.verdict) == VERDICT_FIELDS  # fixed key order
    if status in VALID_STATUSES:
        assert parsed.problems == [] and all(parsed.verdict[k] is not None for k in VERDICT_FIELDS)
    if status == "invalid_schema":
        assert parsed.problems and parsed.raw is not None
    if status == "parse_error":
        assert parsed.verdict is None and parsed.raw is None


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20 and {c[2] for c in CORPUS} == set(STATUSES)


def test_clean_verdict_round_trips_exactly():
    assert parse_verdict(NC_TEXT).verdict == NC
    assert parse_verdict(f"```json\n{C_TEXT}\n```").verdict == C


def test_repairs_are_named_and_values_kept():
    cut = parse_verdict(CUT_IN_TRACE)
    assert "closed a truncated object" in cut.repairs
    assert cut.verdict["reasoning_trace"] == "The advisor promised to cover losses,"
    assert cut.verdict["evidence_list"] == NC["evidence_list"]
    spelled = parse_verdict(dump(NC, final_verdict="non-compliant", severity="high"))
    assert (spelled.verdict["final_verdict"], spelled.verdict["severity"]) == ("NON_COMPLIANT", "HIGH")
    assert parse_verdict(dump(NC, evidence_list="one quote")).verdict["evidence_list"] == ["one quote"]
    assert parse_verdict(str({**C, "rule_violated": None})).verdict["rule_violated"] == "None"
    braces = parse_verdict(dump(NC, evidence_list=["he said {this}"]))
    assert braces.verdict["evidence_list"] == ["he said {this}"]
    assert parse_verdict("[" + NC_TEXT + "]").repairs == ["unwrapped from a JSON array"]


def test_schema_problems_keep_what_is_readable():
    inconsistent = parse_verdict(dump(C, severity="HIGH"))
    assert inconsistent.problems == ["COMPLIANT with severity HIGH"]
    assert inconsistent.verdict["severity"] == "HIGH"
    partial = parse_verdict(CUT_BEFORE_TRACE)
    assert partial.problems == ["missing reasoning_trace"] and partial.verdict["reasoning_trace"] is None
    missing = parse_verdict(json.dumps({"verdict": "NON_COMPLIANT", "why": "x"}))
    assert missing.status == "invalid_schema" and missing.verdict is None
    assert missing.raw == {"verdict": "NON_COMPLIANT", "why": "x"}


def test_every_prefix_of_an_output_parses_without_raising():
    text = "Sure!\n```json\n" + json.dumps(NC, indent=1) + "\n```</s>"
    verdict_end = text.index('"NON_COMPLIANT"') + len('"NON_COMPLIANT')  # the word complete, quote open
    for cut in range(len(text) + 1):
        parsed = parse_verdict(text[:cut])
        assert isinstance(parsed, ParsedVerdict) and parsed.status in STATUSES
        # Once the verdict value is complete, a truncated generation still yields it.
        assert verdict_label(parsed) == ("NON_COMPLIANT" if cut >= verdict_end else None), (cut, parsed.error)


@pytest.mark.parametrize("value", [None, 42, b'{"final_verdict": "COMPLIANT"}', ["x"], {"a": 1}])
def test_non_text_input_is_a_parse_error(value):
    parsed = parse_verdict(value)
    assert parsed.status == "parse_error" and parsed.verdict is None
