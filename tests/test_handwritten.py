"""The hand-written check set (data/handwritten/): it validates, covers the taxonomy, is not a copy of
generated data, and its pair halves are not separable by word choice alone."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config import load_config

from pipeline.prepare.config import PrepareConfig
from pipeline.prepare.records import format_records, near_form, parse_lines
from pipeline.prepare.run import KEY_COLUMNS, plan_splits
from pipeline.reader import SCHEMA as LINE_SCHEMA
from pipeline.synth import generate_items
from pipeline.synth.shortcut import bow_cross_validation

ROOT = Path(__file__).resolve().parent.parent
HANDWRITTEN = ROOT / "data" / "handwritten"
FILES = {"pairs": HANDWRITTEN / "pairs.jsonl", "singles": HANDWRITTEN / "singles.jsonl"}
PREPARE_CONFIG = ROOT / "jobs" / "configs" / "prepare_handwritten.yaml"
VERSIONS = ("compliant_version", "non_compliant_version")

# The topic taxonomy of issue 14 (section 2), spelled as in data/handwritten/README.md.
TAXONOMY = (
    "Promissory / Guaranteed Returns", "Guarantees Against Loss", "Performance Projections",
    "Unbalanced Risk Disclosure", "Misrepresentation or Omission", "Unsuitable Recommendation",
    "Undisclosed Conflict of Interest", "Excessive Trading", "Unauthorized Trading", "Borrowing or Lending",
    "Selling Away", "Outside Business Activity", "Misuse of Customer Funds", "Material Non-Public Information",
    "Front Running", "Off-Channel Communications", "Evading Supervision", "Senior Investor Exploitation",
    "Know Your Customer", "Misleading Advertising / Testimonials / Social Media", "Misrepresented Credentials",
)
FORMATS = {"text_message", "chat", "email", "phone_transcript", "voicemail", "social_post", "marketing_copy",
           "meeting_notes"}

# fuzz.ratio between a hand-written and a generated scenario must stay below this. Measured on the generator's
# own output: the two versions of one generated pair (a one-sentence edit of the same text) score 74-100
# (5th percentile 82); two different generated items score 35 at the median and 55 at the 99th percentile.
# 70 therefore flags anything closer to a generated text than a minimal edit of it, while leaving room above
# what unrelated advisor messages score against each other. The hand-written set measures 45 at most.
MAX_RATIO = 70
# No run of this many words may appear in both (the one shared 8-word run is FDIC boilerplate:
# "up to 250,000 per depositor, per bank").
SHARED_SPAN_WORDS = 10
GENERATED_PAIRS = 1000
BOW_CV_MAX = 0.85


def items(name: str) -> list[dict]:
    return [json.loads(line) for line in FILES[name].read_text(encoding="utf-8").splitlines()]


def scenarios() -> list[str]:
    return [it[v]["scenario"] for name in FILES for it in items(name) for v in VERSIONS if v in it]


@pytest.fixture(scope="module")
def prepared() -> tuple["pd.DataFrame", PrepareConfig]:
    """Both files run through the prepare job's own stages in-process (no Ray): parse_lines ->
    format_records with prepare_handwritten.yaml's model and token budget -> plan_splits."""
    from pipeline.formatting import SYSTEM_PROMPT, resolve_system_role
    from pipeline.models import load_tokenizer, resolve_model_path

    cfg = load_config(PrepareConfig, PREPARE_CONFIG)
    rows = []
    for path in FILES.values():
        for i, raw in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
            rows.append((str(path), i, raw, 0, "", ""))
    lines = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(zip(*rows), LINE_SCHEMA)],
                                 schema=LINE_SCHEMA)
    records = parse_lines(lines, labels={str(p): p.name for p in FILES.values()})
    model_path = resolve_model_path(cfg.model.name_or_path)
    tokenizer = load_tokenizer(model_path, cfg.model.revision, cfg.model.trust_remote_code)
    role = resolve_system_role(tokenizer, cfg.format.system_prompt or SYSTEM_PROMPT, cfg.format.system_role)
    formatted = format_records(records, model_path=model_path, revision=cfg.model.revision,
                               trust_remote_code=cfg.model.trust_remote_code, system_prompt=cfg.format.system_prompt,
                               system_role=role, max_seq_len=cfg.data.max_seq_len, overlong=cfg.data.overlong)
    keys = formatted.select(KEY_COLUMNS).to_pandas()
    _, keys = plan_splits(keys, cfg)
    return keys, cfg


def test_every_line_validates_and_fits_the_budget_with_zero_rejects(prepared):
    keys, cfg = prepared
    expected = 2 * len(items("pairs")) + len(items("singles"))
    rejected = keys[keys["status"] != "accepted"]
    assert rejected.empty, rejected[["id", "reason", "detail"]].to_string()
    assert len(keys) == expected  # inputs = accepted, every version of every line
    assert (keys["num_tokens"] <= cfg.data.max_seq_len).all() and not keys["truncated"].any()
    assert set(keys["split"]) <= {"train", "validation", "test"}  # no duplicate was rejected either
    assert set(keys["source"]) == {"handwritten"}
    assert set(keys["format"]) == FORMATS


def test_scenarios_are_unique_after_normalisation():
    forms = Counter(near_form(s) for s in scenarios())
    assert [f[:80] for f, n in forms.items() if n > 1] == []


def test_counts_topics_formats_and_cases():
    pairs, singles = items("pairs"), items("singles")
    assert len(pairs) >= 60 and len(singles) >= 30
    assert all(all(v in it for v in VERSIONS) for it in pairs)
    assert all(sum(v in it for v in VERSIONS) == 1 for it in singles)
    violating = sum("non_compliant_version" in it for it in singles)
    assert 0.4 <= violating / len(singles) <= 0.6, violating

    topics = Counter(it["non_compliant_version"]["compliance_topic"] for it in pairs)
    assert set(topics) == set(TAXONOMY), set(topics) ^ set(TAXONOMY)
    assert min(topics.values()) >= 2, topics.most_common()[-3:]
    assert all(it["taxonomy_topic"] in TAXONOMY for it in pairs + singles)
    assert {it["chunk_analysis"]["format_identified"] for it in pairs} == FORMATS
    assert {it["chunk_analysis"]["format_identified"] for it in singles} == FORMATS

    tags = Counter(t for it in pairs + singles for t in it["tags"])
    assert tags["hard_negative"] >= 10 and tags["client_proposes"] >= 4 and tags["subtle"] >= 5
    long_threads = [it for it in pairs if "long_thread" in it["tags"]]
    assert len(long_threads) >= 3
    assert all(len([ln for ln in it["compliant_version"]["scenario"].splitlines() if ln.strip()]) >= 20
               for it in long_threads)


def test_manipulation_text_appears_in_both_verdicts():
    """Reviewer-manipulation text ('pre-cleared ... classify as COMPLIANT') must not be a cue: it sits in
    both versions of each such pair and in compliant and violating singles alike."""
    manipulation = re.compile(r"compliant", re.I)
    pairs = [it for it in items("pairs") if "manipulation" in it["tags"]]
    singles = [it for it in items("singles") if "manipulation" in it["tags"]]
    assert len(pairs) + len(singles) >= 6
    for it in pairs:
        assert all(manipulation.search(it[v]["scenario"]) for v in VERSIONS), it["id"]
    assert {v for it in singles for v in VERSIONS if v in it} == set(VERSIONS)


def _word_spans(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_scenario_is_a_near_duplicate_of_generated_data():
    from rapidfuzz import fuzz, process

    hand = scenarios()
    generated = [it[v]["scenario"] for it in generate_items(GENERATED_PAIRS, seed=0) for v in VERSIONS]
    scores = process.cdist(hand, generated, scorer=fuzz.ratio, dtype=np.uint8, workers=1)
    worst = np.unravel_index(scores.argmax(), scores.shape)
    print(f"max fuzz.ratio handwritten vs {len(generated)} generated scenarios: {scores.max()}")
    assert scores.max() < MAX_RATIO, (hand[worst[0]][:200], generated[worst[1]][:200])

    spans = set().union(*(_word_spans(g, SHARED_SPAN_WORDS) for g in generated))
    shared = {" ".join(s) for h in hand for s in _word_spans(h, SHARED_SPAN_WORDS) & spans}
    assert shared == set()


def test_pair_halves_are_not_separable_by_word_choice():
    """The generator's own shortcut measure (TF-IDF 1-2 grams + logistic regression, 5-fold cross-validation
    grouped by pair) on the hand-written pairs: how well word choice alone tells compliant from violating."""
    accuracy = bow_cross_validation(items("pairs"), folds=5)["accuracy"]
    print(f"bag-of-words 5-fold CV accuracy on hand-written pairs: {accuracy:.3f}")
    assert accuracy <= BOW_CV_MAX
