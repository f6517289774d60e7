"""Tests of the synthetic data generator (pipeline.synth) and its bundled sample (data/sample)."""

from __future__ import annotations

import gzip
import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from jobs import generate_data
from pipeline import synth

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
VERSIONS = {"compliant_version": "COMPLIANT", "non_compliant_version": "NON_COMPLIANT"}
RECORD_KEYS = ("scenario", "final_verdict", "executive_summary", "rule_violated", "compliance_topic", "severity",
               "evidence_list", "reasoning_trace")
HARD_NEGATIVES = ("not guaranteed", "does not guarantee", "fdic-insured", "can't lend", "can't borrow",
                  "written authorization", "can't act on that tip", "firm's email so it's recorded")


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def near_key(text: str) -> str:
    """The near-duplicate key: lowercase, punctuation and whitespace removed."""
    return re.sub(r"[\W_]+", "", text.lower())


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return list(synth.generate_items(500, seed=11))


def test_deterministic_for_a_seed():
    assert list(synth.generate_items(20, seed=3)) == list(synth.generate_items(20, seed=3))
    assert list(synth.generate_items(20, seed=3)) != list(synth.generate_items(20, seed=4))


def test_sharding_matches_one_run():
    whole = list(synth.generate_items(30, seed=5))
    parts = [*synth.generate_items(10, seed=5), *synth.generate_items(12, seed=5, start=10),
             *synth.generate_items(8, seed=5, start=22)]
    assert parts == whole
    assert synth.make_item(17, seed=5) == whole[17]
    assert [it["id"] for it in whole[:2]] == ["synth-000000", "synth-000001"]


def test_invariants(items):
    for item in items:
        assert item["source"] in synth.SOURCES
        assert item["chunk_analysis"]["format_identified"] in synth.FORMATS
        for key, verdict in VERSIONS.items():
            rec = item[key]
            assert tuple(rec) == RECORD_KEYS
            assert rec["final_verdict"] == verdict
            for field in RECORD_KEYS:
                assert rec[field], (item["id"], key, field)
            assert all(q.strip() for q in rec["evidence_list"])
            assert "{" not in rec["scenario"] + rec["reasoning_trace"] + rec["executive_summary"]
            assert len(rec["executive_summary"].split()) <= 50
            haystack = collapse(rec["scenario"])
            for quote in rec["evidence_list"]:
                assert collapse(quote) in haystack, (item["id"], key, quote)
        c, nc = item["compliant_version"], item["non_compliant_version"]
        assert (c["severity"], c["rule_violated"], c["compliance_topic"]) == ("NONE", "None", "None")
        assert 1 <= len(c["evidence_list"]) <= 2
        assert nc["severity"] in ("HIGH", "MEDIUM", "LOW")
        assert nc["rule_violated"] not in ("", "None") and nc["compliance_topic"] not in ("", "None")
        assert 1 <= len(nc["evidence_list"]) <= 3


def test_pairs_differ_minimally(items):
    for item in items:
        c_lines = item["compliant_version"]["scenario"].splitlines()
        nc_lines = item["non_compliant_version"]["scenario"].splitlines()
        assert c_lines != nc_lines
        assert len(c_lines) == len(nc_lines)  # same structure, only swapped lines differ
        same = sum(a == b for a, b in zip(c_lines, nc_lines, strict=True))
        assert same / len(nc_lines) >= 0.5, item["id"]


def test_citations_match_topics(items):
    by_name = {t.name: t for t in synth.TOPICS}
    for item in items:
        nc = item["non_compliant_version"]
        topic = by_name[nc["compliance_topic"]]
        assert nc["rule_violated"] in topic.citations
        # Reg BI covers retail customers; institutional accounts are judged under FINRA Rule 2111.
        if "institutional customer" in nc["reasoning_trace"]:
            assert "Regulation Best Interest" not in nc["rule_violated"]


def test_topic_and_format_coverage(items):
    topics = Counter(it["non_compliant_version"]["compliance_topic"] for it in items)
    formats = Counter(it["chunk_analysis"]["format_identified"] for it in items)
    assert len(synth.TOPICS) >= 15 and len(topics) >= 15
    assert set(formats) == set(synth.FORMATS)
    assert set(Counter(it["source"] for it in items)) == set(synth.SOURCES)
    assert set(Counter(it["non_compliant_version"]["severity"] for it in items)) == {"HIGH", "MEDIUM", "LOW"}


def test_hard_negatives_in_compliant_versions(items):
    found = Counter()
    for item in items:
        c = item["compliant_version"]
        text = c["scenario"].lower()
        for phrase in HARD_NEGATIVES:
            if phrase in text and any(phrase in q.lower() for q in c["evidence_list"]):
                found[phrase] += 1
    assert found["not guaranteed"] + found["does not guarantee"] > 0
    assert len(found) >= 4, found


def test_few_near_duplicates():
    keys = Counter()
    for item in synth.generate_items(2000, seed=2):
        for key in VERSIONS:
            keys[near_key(item[key]["scenario"])] += 1
    duplicates = sum(n - 1 for n in keys.values())
    assert duplicates / (2 * 2000) < 0.005


def test_catalogue_is_well_formed():
    allowed = set(synth.CONTEXT_KEYS)
    for topic in synth.TOPICS:
        assert topic.templates and topic.severity in ("HIGH", "MEDIUM", "LOW")
        for tpl in topic.templates:
            assert any(line.kind == "V" and line.p >= 1.0 for line in tpl["lines"]), tpl["key"]
            assert tpl.get("rule", topic.citations[0]) in topic.citations
            texts = [tpl["setting"], tpl["why_nc"], tpl["why_c"], *tpl["subject"], *tpl["summary_nc"],
                     *tpl["summary_c"]]
            for line in tpl["lines"]:
                texts += [*line.texts, *line.alt, *line.lead]
            for text in texts:
                fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
                assert fields <= allowed, (tpl["key"], fields - allowed)


def test_write_jsonl_gzip_roundtrip(tmp_path):
    path = tmp_path / "out.jsonl.gz"
    assert synth.write_jsonl(path, 5, seed=1, start=3) == 5
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        got = [json.loads(line) for line in fh]
    assert got == list(synth.generate_items(5, seed=1, start=3))


def test_cli_splits_by_source_and_shard(tmp_path, capsys):
    assert generate_data.main(["--out", str(tmp_path), "--pairs", "40", "--seed", "9", "--shards", "2"]) == 0
    files = sorted(tmp_path.glob("*.jsonl"))
    assert files and all(re.search(r"-0000[01]-of-00002\.jsonl$", f.name) for f in files)
    items = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(it["id"] for it in items) == [f"synth-{i:06d}" for i in range(40)]
    for f in files:
        stem = f.name.split("-")[0]
        source = {v: k for k, v in synth.SOURCE_FILES.items()}[stem]
        assert {json.loads(line)["source"] for line in f.read_text().splitlines()} == {source}
    assert "total: 40 pairs" in capsys.readouterr().out


def test_bundled_sample():
    files = sorted(SAMPLE_DIR.glob("*.jsonl"))
    assert {f.name for f in files} >= {"sec_synthetic.jsonl", "finra_synthetic.jsonl", "internal_mutated.jsonl"}
    items = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert len(items) >= 300
    assert sum(f.stat().st_size for f in files) < 2_000_000
    assert len({it["non_compliant_version"]["compliance_topic"] for it in items}) >= 15
    for item in items:
        for key in VERSIONS:
            scenario = collapse(item[key]["scenario"])
            assert all(collapse(q) in scenario for q in item[key]["evidence_list"])


def test_bundled_sample_is_reproducible():
    """data/sample is `python -m jobs.generate_data --out data/sample --pairs 360 --seed 7`."""
    items = [json.loads(line) for f in sorted(SAMPLE_DIR.glob("*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    for item in items[:: max(1, len(items) // 40)]:
        index = int(item["id"].removeprefix("synth-"))
        assert synth.make_item(index, seed=7) == item, "regenerate data/sample after changing the catalogue"


def test_validator_accepts_everything(items):
    validation = pytest.importorskip("pipeline.validation")
    for n, item in enumerate(items[:200]):
        rows = validation.parse_line(json.dumps(item).encode(), "synth.jsonl", "synth", n + 1)
        assert [r["status"] for r in rows] == ["accepted", "accepted"], [r["detail"] for r in rows]
