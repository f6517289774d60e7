"""Record schema: every rejection reason, enum normalisation, evidence matching."""

import copy
import json

import pytest

from conftest import item
from pipeline.prepare.validation import REASONS, parse_line


def parse(obj) -> list[dict]:
    raw = obj if isinstance(obj, bytes) else (obj if isinstance(obj, str) else json.dumps(obj)).encode()
    return parse_line(raw, "/data/x.jsonl", "x.jsonl", 7)


def test_valid_pair_gives_two_accepted_records_with_ids():
    rows = parse(item(1))
    assert [r["status"] for r in rows] == ["accepted", "accepted"]
    assert [r["id"] for r in rows] == ["x.jsonl:7#c", "x.jsonl:7#nc"]
    assert rows[1]["final_verdict"] == "NON_COMPLIANT" and rows[1]["source"] == "FINRA" and rows[1]["format"] == "chat"


@pytest.mark.parametrize("raw", ["Non-Compliant", "non_compliant", "NON COMPLIANT", "noncompliant"])
def test_verdict_variants_normalised(raw):
    it = item(1)
    it["non_compliant_version"]["final_verdict"] = raw
    it["non_compliant_version"]["severity"] = "high"
    rows = parse(it)
    assert rows[1]["status"] == "accepted"
    assert (rows[1]["final_verdict"], rows[1]["severity"]) == ("NON_COMPLIANT", "HIGH")


def test_none_variants_normalised():
    it = item(1)
    it["compliant_version"].update(severity="none", rule_violated="N/A", compliance_topic="none")
    row = parse(it)[0]
    assert row["status"] == "accepted"
    assert (row["severity"], row["rule_violated"], row["compliance_topic"]) == ("NONE", "None", "None")


def mutate(fn, key="non_compliant_version"):
    it = copy.deepcopy(item(3))
    fn(it[key])
    return {r["version"]: r for r in parse(it)}[key.removesuffix("_version")]


@pytest.mark.parametrize("fn, reason", [
    (lambda v: v.pop("scenario"), "missing_field"),
    (lambda v: v.update(reasoning_trace="   "), "empty_field"),
    (lambda v: v.update(evidence_list=[]), "empty_field"),
    (lambda v: v.update(evidence_list="a quote"), "wrong_type"),
    (lambda v: v.update(severity=3), "wrong_type"),
    (lambda v: v.update(final_verdict="MAYBE"), "unknown_enum"),
    (lambda v: v.update(severity="CRITICAL"), "unknown_enum"),
    (lambda v: v.update(final_verdict="COMPLIANT", severity="NONE", rule_violated="None", compliance_topic="None"),
     "verdict_version_mismatch"),
    (lambda v: v.update(severity="NONE"), "inconsistent_labels"),
    (lambda v: v.update(rule_violated="none"), "inconsistent_labels"),
    (lambda v: v.update(evidence_list=["the advisor promised 30% a year"]), "evidence_not_in_scenario"),
])
def test_each_version_reason(fn, reason):
    row = mutate(fn)
    assert (row["status"], row["reason"]) == ("rejected", reason), row["detail"]
    assert row["detail"]


def test_compliant_with_severity_is_inconsistent():
    row = mutate(lambda v: v.update(severity="LOW"), "compliant_version")
    assert row["reason"] == "inconsistent_labels"


def test_evidence_matches_across_whitespace_differences():
    def spread(v):
        v["scenario"] = v["scenario"].replace(" will not ", "  will\n not ")
    assert mutate(spread)["status"] == "accepted"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe{}", "not_utf8"),
    (b"", "blank_line"),
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"source": "SEC"}', "no_versions"),
])
def test_line_reasons(raw, reason):
    rows = parse(raw)
    assert len(rows) == 1 and rows[0]["reason"] == reason and rows[0]["status"] == "rejected"


def test_oversize_line_rejected_without_content():
    rows = parse_line(b"", "/d/x.jsonl", "x.jsonl", 1, oversize=50_000_000)
    assert rows[0]["reason"] == "line_too_large" and "50,000,000" in rows[0]["detail"]


def test_one_bad_version_keeps_the_other():
    it = item(4)
    it["compliant_version"]["final_verdict"] = "???"
    rows = parse(it)
    assert [r["status"] for r in rows] == ["rejected", "accepted"]


def test_every_reason_is_described():
    assert all(isinstance(v, str) and v for v in REASONS.values())


def test_deep_nesting_and_lone_surrogates_are_named_rejects():
    nested = parse(b"[" * 100_000 + b"]" * 100_000)
    assert [r["reason"] for r in nested] == ["nested_too_deep"]
    lone = parse(json.dumps(item(1)).replace("Harbor 1 fund", "Harbor \\udc00 fund"))
    assert [r["reason"] for r in lone] == ["lone_surrogate"] and "udc00" in lone[0]["detail"]
    pair = parse(json.dumps(item(1)).replace("Harbor 1 fund", "Harbor \\ud83d\\ude00 fund"))  # a valid pair: 😀
    assert [r["status"] for r in pair] == ["accepted", "accepted"] and "\U0001F600" in pair[1]["scenario"]
    assert {"nested_too_deep", "lone_surrogate", "dangling_symlink"} <= set(REASONS)
