"""Tests of the synthetic data generator v2 (pipeline.synth) and its bundled sample (data/sample)."""

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
from pipeline.synth import catalogue, context, shortcut

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
VERSIONS = {"compliant_version": "COMPLIANT", "non_compliant_version": "NON_COMPLIANT"}
RECORD_KEYS = ("scenario", "final_verdict", "executive_summary", "rule_violated", "compliance_topic", "severity",
               "evidence_list", "reasoning_trace")
HARD_NEGATIVES = ("not guaranteed", "fdic-insured", "can't lend", "written authorization", "rather not",
                  "that's front running", "not public yet", "not comfortable", "firm's email")
# The fixed taxonomy (issue 14): the hand-written check set and the report use exactly these names.
TAXONOMY_NAMES = (
    "Promissory / Guaranteed Returns", "Guarantees Against Loss", "Performance Projections",
    "Unbalanced Risk Disclosure", "Misrepresentation or Omission", "Unsuitable Recommendation",
    "Undisclosed Conflict of Interest", "Excessive Trading", "Unauthorized Trading", "Borrowing / Lending",
    "Selling Away", "Outside Business Activity", "Misuse of Customer Funds", "Material Non-Public Information",
    "Front Running", "Off-Channel Communications", "Evading Supervision", "Senior Investor Exploitation",
    "Know Your Customer", "Misleading Advertising / Testimonials", "Misrepresented Credentials",
)


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def near_key(text: str) -> str:
    """The near-duplicate key: lowercase, punctuation and whitespace removed."""
    return re.sub(r"[\W_]+", "", text.lower())


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return list(synth.generate_items(800, seed=11))


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
    assert synth.make_item(17, seed=5) != synth.make_item(18, seed=5)


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
        # A role swap (the advisor proposes vs the client proposes) moves lines between speakers, so lines
        # are compared as multisets: most lines, and nearly all words, are shared by both versions.
        same = sum((Counter(c_lines) & Counter(nc_lines)).values())
        assert same / len(nc_lines) >= 0.5 or len(nc_lines) < 6, item["id"]  # short threads: words decide
        c_words, nc_words = Counter(collapse(" ".join(c_lines)).split()), Counter(collapse(" ".join(nc_lines)).split())
        assert sum((c_words & nc_words).values()) / sum(nc_words.values()) >= 0.75, item["id"]


def test_citations_match_topics(items):
    by_name = {t.name: t for t in synth.topics()}
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
    assert set(topics) == set(synth.taxonomy()) == set(TAXONOMY_NAMES)  # every taxonomy topic
    assert set(formats) == set(synth.FORMATS) and len(synth.FORMATS) == 7  # every format
    assert set(Counter(it["source"] for it in items)) == set(synth.SOURCES)
    assert set(Counter(it["non_compliant_version"]["severity"] for it in items)) == {"HIGH", "MEDIUM", "LOW"}


def test_taxonomy_is_shared_data():
    tax = synth.taxonomy()
    assert tuple(tax) == TAXONOMY_NAMES
    for name, entry in tax.items():
        assert entry["citations"] and entry["severity"] in ("HIGH", "MEDIUM", "LOW") and entry["rule_text"], name
    assert any("2111" in c for c in tax["Unsuitable Recommendation"]["citations"])
    assert any("206(4)-1" in c for c in tax["Misleading Advertising / Testimonials"]["citations"])


def test_variety_of_a_real_archive(items):
    """Lengths from one line to ~40 turns, speakers other than the advisor, informal register, email parts."""
    turns = [len(it["non_compliant_version"]["scenario"].splitlines()) for it in items
             if it["chunk_analysis"]["format_identified"] in ("text_message", "chat")]
    assert min(turns) <= 3 and max(turns) >= 38
    emails = [it["compliant_version"]["scenario"] for it in items if it["chunk_analysis"]["format_identified"] == "email"]
    assert any("wrote:\n> " in e for e in emails) and all(e.startswith("From: ") for e in emails)
    assert any("Securities offered through" in e or "FDIC-insured" in e for e in emails)
    traces = " ".join(it["non_compliant_version"]["reasoning_trace"] for it in items)
    for speaker in ("The advisor ", "The client ", "The advisor's assistant ", "'s new caregiver ", "The prospect "):
        assert speaker in traces, speaker  # evidence spoken by the advisor and by others
    texts = " ".join(it["compliant_version"]["scenario"] for it in items)
    assert re.search(r"\bu\b|\bthx\b|\bpls\b", texts) and "dont " in texts


def test_manipulation_sentences_in_both_classes(items):
    sentences = catalogue.fillers()["manipulation"]
    hits = {key: sum(any(m in it[key]["scenario"] for m in sentences) for it in items) for key in VERSIONS}
    assert hits["compliant_version"] == hits["non_compliant_version"] > 0.1 * len(items)
    for it in items:
        for key in VERSIONS:
            rec = it[key]
            assert not any(m in q for m in sentences for q in rec["evidence_list"])
            if any(m in rec["scenario"] for m in sentences):
                assert "do not change the assessment" in rec["reasoning_trace"]


def test_key_moves_are_word_matched():
    """The two texts of a key turn share their words: at most a few tokens differ (cue-free by construction)."""
    def tokens(text: str) -> Counter:
        return Counter(re.findall(r"(?u)\b\w\w+\b", text.lower()))

    diffs = []
    for topic in synth.topics():
        for scenario in topic.scenarios:
            for move in scenario.keys:
                assert any(k.nc != k.c or "|" in k.who for k in move), (topic.key, scenario.key)
                for k in move:
                    a, b = tokens(k.nc), tokens(k.c)
                    diffs.append(sum(((a - b) + (b - a)).values()))
    assert max(diffs) <= 12 and sum(diffs) / len(diffs) <= 2.5
    assert sum(d == 0 for d in diffs) / len(diffs) >= 0.5  # role swaps and pure reorderings


def test_bag_of_words_cannot_separate_the_versions():
    """Issue 14's shortcut bound (bench/bench_shortcut.py measures <= 0.80 on 2,000 pairs; looser here)."""
    result = shortcut.bow_cross_validation(synth.generate_items(600, seed=123), folds=5)
    assert result["accuracy"] <= 0.85, result
    assert result["roc_auc"] < 0.95, result


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
    allowed = set(context.CONTEXT_KEYS)
    taxonomy_keys = {t.key for t in synth.topics()}
    assert taxonomy_keys == set(catalogue._read("scenarios.yaml"))  # no scenario for an unknown topic
    for topic in synth.topics():
        assert topic.scenarios, topic.name
        for sc in topic.scenarios:
            assert sc.who in catalogue.COUNTERPARTS and sc.keys, sc.key
            assert sc.rule is None or sc.rule in topic.citations, sc.key
            assert set(sc.formats) <= set(synth.FORMATS), sc.key
            texts = [sc.setting, sc.summary_nc, sc.summary_c, sc.why_nc, sc.why_c]
            for line in (*sc.before, *sc.after):
                assert line[0].lstrip("?") in catalogue.SPEAKERS
                texts += line[1:]
            for move in sc.keys:
                for k in move:
                    assert set(k.who.split("|")) <= set(catalogue.SPEAKERS), sc.key
                    texts += [k.nc, k.c]
            for text in texts:
                fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
                assert fields <= allowed, (sc.key, fields - allowed)


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
    assert {it["non_compliant_version"]["compliance_topic"] for it in items} == set(TAXONOMY_NAMES)
    assert {it["chunk_analysis"]["format_identified"] for it in items} == set(synth.FORMATS)
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
    validation = pytest.importorskip("pipeline.prepare.validation")
    for n, item in enumerate(items[:200]):
        rows = validation.parse_line(json.dumps(item).encode(), "synth.jsonl", "synth", n + 1)
        assert [r["status"] for r in rows] == ["accepted", "accepted"], [r["detail"] for r in rows]
