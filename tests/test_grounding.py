"""ground_evidence: exact after whitespace collapse, fuzzy for typos, fabricated quotes flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.inference.grounding import MIN_FUZZY_CHARS, Grounding, ground_evidence, grounding_summary

ROOT = Path(__file__).resolve().parent.parent
COMMUNICATION = (
    "From: Noor Tanaka <ntanaka@bluestem.com>\nTo: Lucía Raman\nSubject: REIT\n\n"
    "Lucía,\n\nIt isn't traded on an exchange. The sponsor's redemption program is capped\n"
    "and can be suspended, so it's not money you should need soon.\n\n"
    "Honestly, this one can't lose; if it drops I will cover the difference myself.\n\nNoor"
)


def test_exact_quote():
    [g] = ground_evidence(["It isn't traded on an exchange."], COMMUNICATION)
    assert g == Grounding("It isn't traded on an exchange.", True, 100.0, True)


def test_different_whitespace_and_line_breaks_are_exact():
    quote = "The sponsor's  redemption program is capped and can\tbe suspended,\n so it's not money"
    [g] = ground_evidence([quote], COMMUNICATION)
    assert g.exact and g.grounded and g.score == 100.0
    assert g.quote == quote  # reported as the model wrote it


def test_one_character_typo_is_grounded_fuzzily():
    typo = "this one can't lose; if it drops I will cover the diference myself."
    [g] = ground_evidence([typo], COMMUNICATION)
    assert not g.exact and g.grounded and 90.0 <= g.score < 100.0


def test_fabricated_quote_is_flagged():
    [g] = ground_evidence(["I guarantee you a 12% annual return with no risk whatsoever."], COMMUNICATION)
    assert not g.exact and not g.grounded and g.score < 75.0


def test_case_sensitive_exact_match():
    [g] = ground_evidence(["IT ISN'T TRADED ON AN EXCHANGE."], COMMUNICATION)
    assert not g.exact and not g.grounded


def test_threshold_and_short_quotes():
    typo = "this one can't lose; if it drops I will cover the diference myself."
    assert not ground_evidence([typo], COMMUNICATION, threshold=100.0)[0].grounded
    short = "can't loze"  # one typo in a phrase shorter than MIN_FUZZY_CHARS: must occur exactly
    assert len(short) < MIN_FUZZY_CHARS
    [g] = ground_evidence([short], COMMUNICATION)
    assert g.score >= 90.0 and not g.grounded


@pytest.mark.parametrize("quote", ["", "   \n", None, 17])
def test_blank_or_non_text_quotes_are_ungrounded(quote):
    [g] = ground_evidence([quote], COMMUNICATION)
    assert (g.exact, g.score, g.grounded) == (False, 0.0, False)


def test_empty_communication_and_no_quotes():
    assert ground_evidence([], COMMUNICATION) == []
    assert not ground_evidence(["anything at all here"], "")[0].grounded


def test_summary_counts():
    groundings = ground_evidence([
        "It isn't traded on an exchange.",
        "this one can't lose; if it drops I will cover the diference myself.",
        "I guarantee you a 12% annual return with no risk whatsoever.",
        "Lucía,",
    ], COMMUNICATION)
    assert grounding_summary(groundings) == {"n": 4, "exact": 2, "grounded": 3, "rate": 0.75}
    assert grounding_summary([]) == {"n": 0, "exact": 0, "grounded": 0, "rate": None}


def test_every_gold_quote_in_the_sample_data_grounds_exactly():
    """The shipped sample's labels were validated verbatim: the grounder must agree on all of them."""
    checked = 0
    for path in sorted((ROOT / "data" / "sample").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            for key in ("compliant_version", "non_compliant_version"):
                version = item.get(key)
                if version:
                    groundings = ground_evidence(version["evidence_list"], version["scenario"])
                    assert all(g.exact for g in groundings), (item["id"], key)
                    checked += len(groundings)
    assert checked > 500


def test_read_verdict_is_the_one_way_from_a_generation_to_a_verdict():
    """Evaluation, scoring and serving all read a generation through read_verdict: parsed, typed, grounded."""
    import json
    import math

    from pipeline.inference.engine import Generation
    from pipeline.inference.verdicts import read_verdict

    answer = json.dumps({"final_verdict": "NON_COMPLIANT", "executive_summary": "s", "rule_violated": "FINRA Rule 2111",
                         "compliance_topic": "Suitability", "severity": "HIGH", "reasoning_trace": "r",
                         "evidence_list": ["It isn't traded on an exchange.", "a sentence the advisor never wrote"]})
    record = read_verdict(Generation(answer, 120, 40, True, 0.5), COMMUNICATION)
    assert record.verdict["final_verdict"] == "NON_COMPLIANT" and record.parsed.status == "ok"
    assert [g.grounded for g in record.evidence] == [True, False] and record.all_grounded is False
    row = record.columns()
    assert (row["pred_verdict"], row["n_quotes"], row["grounded_rate"], row["prompt_tokens"]) == (
        "NON_COMPLIANT", 2, 0.5, 120)
    assert json.loads(row["pred_json"]) == record.verdict
    broken = read_verdict(Generation("not json at all", 120, 5, True, 0.1), COMMUNICATION)
    assert broken.verdict is None and broken.parsed.status == "parse_error" and broken.all_grounded is None
    # Cut by the new-token budget before the answer ended: truncated, not a parse error.
    cut = read_verdict(Generation("not json at all", 120, 5, False, 0.1), COMMUNICATION)
    assert cut.verdict is None and cut.parsed.status == "truncated"
    assert broken.columns()["n_quotes"] == 0 and math.isnan(broken.columns()["grounded_rate"])
