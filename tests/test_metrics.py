"""compute_metrics against values computed by hand on a crafted ten-row prediction set."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.metrics import (
    PREDICTION_COLUMNS,
    UNPARSEABLE,
    citation_match,
    compute_metrics,
    headline,
    precision_at_prevalence,
)

NAN = float("nan")
A, B, K = "Guarantees Against Loss", "Churning and Excessive Trading", "Know Your Customer"
# id, gold verdict/topic/severity/rule, format, pred verdict/topic/severity/rule, status, p, grounded,
# n_quotes
ROWS = [
    ("r1", "NON_COMPLIANT", A, "HIGH", "FINRA Rule 2150(b)", "email",
     "NON_COMPLIANT", A, "HIGH", "FINRA 2150", "ok", 0.9, 1.0, 2),
    ("r2", "NON_COMPLIANT", A, "HIGH", "SEC Rule 10b-5 (Exchange Act Section 10(b))", "chat",
     "NON_COMPLIANT", B, "high", "Rule 10b5-1", "ok", 0.8, 0.5, 2),
    ("r3", "NON_COMPLIANT", B, "MEDIUM", "FINRA Rule 2111", "email",
     "COMPLIANT", "None", "NONE", "None", "repaired", 0.3, NAN, 0),
    ("r4", "NON_COMPLIANT", B, "MEDIUM", "Advisers Act Rule 206(4)-1(a)(5)", "chat",
     None, None, None, None, "parse_error", 0.6, NAN, 0),
    ("r5", "NON_COMPLIANT", K, "LOW", "SEA Rule 17a-4(b)(4); FINRA Rule 4511", "email",
     "NON_COMPLIANT", "know your customer", "MEDIUM", "FINRA Rule 4511", "ok", 0.7, 1.0, 1),
    ("r6", "COMPLIANT", "None", "NONE", "None", "chat",
     "COMPLIANT", "None", "NONE", "None", "ok", 0.1, 1.0, 1),
    ("r7", "COMPLIANT", "None", "NONE", "None", "email",
     "COMPLIANT", "none", "NONE", "None", "invalid_schema", 0.2, 0.0, 1),
    ("r8", "COMPLIANT", "None", "NONE", "None", "chat",
     "COMPLIANT", "None", "NONE", "None", "ok", 0.45, 1.0, 1),
    ("r9", "COMPLIANT", "None", "NONE", "None", "email",
     None, None, None, None, "parse_error", NAN, NAN, 0),
    ("r10", "COMPLIANT", "None", "NONE", "None", "chat",
     "COMPLIANT", A, "NONE", "None", "repaired", 0.4, NAN, 0),
]
COLUMNS = ["id", "gold_verdict", "gold_topic", "gold_severity", "gold_rule", "format", "pred_verdict",
           "pred_topic", "pred_severity", "pred_rule", "parse_status", "p_violation", "grounded_rate",
           "n_quotes"]


@pytest.fixture()
def pred() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=COLUMNS).assign(source="SEC")[list(PREDICTION_COLUMNS)]


@pytest.fixture()
def metrics(pred) -> dict:
    return compute_metrics(pred, threshold=0.4)


def test_verdict_counts_unparseable_as_wrong(metrics):
    # y_true 1111100000; y_pred 1100100001 (r4 and r9 unreadable -> the opposite of gold):
    # TP 3 (r1 r2 r5), FN 2 (r3 r4), FP 1 (r9), TN 4.
    v = metrics["verdict"]
    assert v["confusion"] == {"labels": ["COMPLIANT", "NON_COMPLIANT"], "matrix": [[4, 1], [2, 3]]}
    assert v["accuracy"] == pytest.approx(0.7)
    assert v["precision"] == pytest.approx(0.75)
    assert v["recall"] == pytest.approx(0.6)
    assert v["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert (v["tpr"], v["fpr"]) == (pytest.approx(0.6), pytest.approx(0.2))
    assert v["n_unparseable"] == 2 and v["unparseable_by_gold"] == {"COMPLIANT": 1, "NON_COMPLIANT": 1}
    assert v["precision_at_prevalence"]["0.01"] == pytest.approx(0.006 / 0.204)


def test_probability_metrics(metrics):
    p = metrics["probability"]
    assert p["n_scored"] == 9
    # positives .9 .8 .3 .6 .7 vs negatives .1 .2 .45 .4: 18 of 20 pairs ordered right.
    assert p["roc_auc"] == pytest.approx(0.9)
    # ranked: P P P P N N P N N -> AP = 4 * 0.2 * 1 + 0.2 * 5/7.
    assert p["pr_auc"] == pytest.approx(0.8 + 0.2 * 5 / 7)
    # p >= 0.4: TP 4 (.9 .8 .7 .6), FP 2 (.45 .4), FN 1 (.3), TN 2.
    assert (p["tpr"], p["fpr"]) == (pytest.approx(0.8), pytest.approx(0.5))
    assert p["precision"] == pytest.approx(4 / 6)
    assert p["precision_at_prevalence"]["0.01"] == pytest.approx(0.008 / (0.008 + 0.5 * 0.99))
    assert p["precision_at_prevalence"]["0.001"] == pytest.approx(0.0008 / (0.0008 + 0.5 * 0.999))
    assert p["brier"] == pytest.approx((0.79 + 0.4125) / 9)
    assert p["ece"] == pytest.approx(2.85 / 9)
    bins = {b["lo"]: b for b in p["calibration"]}
    assert len(bins) == 10 and bins[0.4]["count"] == 2 and bins[0.4]["mean_predicted"] == pytest.approx(0.425)
    assert bins[0.4]["observed_rate"] == 0.0
    assert bins[0.5]["count"] == 0 and bins[0.5]["observed_rate"] is None
    assert "p_violation missing for 1 rows; probability metrics use the rest" in metrics["notes"]


def test_topic_and_severity(metrics):
    t = metrics["topic"]
    # right: r1, r5 (case slip), r6, r7 ("none"), r8 -> 5/10.
    assert t["accuracy"] == pytest.approx(0.5)
    # per gold class F1: A 0.5 (1 of 2 predicted, 1 of 2 found), B 0, K 1, None 2*.75*.6/1.35.
    assert t["macro_f1"] == pytest.approx((0.5 + 0 + 1 + 0.9 / 1.35) / 4)
    assert t["confusion"]["labels"] == ["None", B, A, K, UNPARSEABLE]
    # gold None: r6 r7 r8 right, r10 -> A, r9 unreadable
    assert t["confusion"]["matrix"][0] == [3, 0, 1, 0, 1]
    s = metrics["severity"]
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["macro_f1"] == pytest.approx((1 + 0 + 0 + 0.8) / 4)  # HIGH, MEDIUM, LOW, NONE
    assert s["confusion"]["labels"] == ["HIGH", "MEDIUM", "LOW", "NONE", UNPARSEABLE]


def test_rule_validity_grounding(metrics):
    assert metrics["rule"] == {"n": 5, "matched": 2, "match_rate": pytest.approx(0.4)}  # r1 and r5
    assert metrics["json_validity"]["rate"] == pytest.approx(0.7)
    by_status = {"ok": 5, "repaired": 2, "parse_error": 2, "invalid_schema": 1}
    assert metrics["json_validity"]["by_status"] == by_status
    g = metrics["grounding"]
    assert (g["n_quotes"], g["n_grounded"], g["rate"]) == (8, 6, pytest.approx(0.75))


def test_breakdowns(metrics):
    by_topic = {r["key"]: r for r in metrics["by_topic"]}
    assert by_topic["None"] == {"key": "None", "n": 5, "n_violations": 0,
                                "verdict_accuracy": pytest.approx(0.8), "recall": None,
                                "topic_accuracy": pytest.approx(0.6)}
    b = by_topic[B]
    assert (b["verdict_accuracy"], b["recall"], b["topic_accuracy"]) == (0, 0, 0)
    assert (by_topic[A]["recall"], by_topic[A]["topic_accuracy"]) == (1.0, 0.5)
    by_format = {r["key"]: r for r in metrics["by_format"]}
    assert by_format["email"]["verdict_accuracy"] == pytest.approx(0.6)
    assert by_format["email"]["recall"] == pytest.approx(2 / 3)
    assert (by_format["chat"]["verdict_accuracy"], by_format["chat"]["recall"]) == (pytest.approx(0.8), 0.5)
    assert metrics["by_source"] == [{"key": "SEC", "n": 10, "n_violations": 5, "verdict_accuracy": 0.7,
                                     "recall": 0.6, "topic_accuracy": 0.5}]


def _has_numpy_or_nan(value) -> bool:
    if isinstance(value, dict):
        return any(_has_numpy_or_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_numpy_or_nan(v) for v in value)
    return isinstance(value, np.generic) or (isinstance(value, float) and not math.isfinite(value))


def test_json_serialisable_and_headline(metrics):
    json.dumps(metrics, allow_nan=False)
    assert not _has_numpy_or_nan(metrics)
    h = headline(metrics)
    assert h["precision @ 1% prevalence"] == metrics["probability"]["precision_at_prevalence"]["0.01"]
    assert h["verdict F1"] == metrics["verdict"]["f1"] and len(h) == 13


def test_probability_skipped_with_a_note(pred):
    m = compute_metrics(pred.assign(p_violation=NAN))
    assert m["probability"]["roc_auc"] is None and m["probability"]["calibration"] == []
    assert any("no p_violation" in note for note in m["notes"])
    one_class = compute_metrics(pred[pred.gold_verdict == "COMPLIANT"])
    assert one_class["probability"]["roc_auc"] is None and one_class["verdict"]["recall"] is None
    assert any("one class only" in note for note in one_class["notes"])
    json.dumps(m, allow_nan=False) and json.dumps(one_class, allow_nan=False)


def test_bad_tables_are_refused(pred):
    with pytest.raises(ValueError, match="lacks columns \\['p_violation'\\]"):
        compute_metrics(pred.drop(columns=["p_violation"]))
    with pytest.raises(ValueError, match="empty"):
        compute_metrics(pred.iloc[:0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics(pred.assign(p_violation=1.5))
    with pytest.raises(ValueError, match="gold_verdict"):
        compute_metrics(pred.assign(gold_verdict="MAYBE"))


def test_precision_at_prevalence_formula():
    assert precision_at_prevalence(0.9, 0.05, 0.01) == pytest.approx(0.009 / (0.009 + 0.0495))
    assert precision_at_prevalence(0.8, 0.0, 0.001) == 1.0
    assert precision_at_prevalence(0.0, 0.0, 0.01) is None
    assert precision_at_prevalence(None, 0.1, 0.01) is None


@pytest.mark.parametrize("gold, pred, expected", [
    ("FINRA Rule 2150(b)", "FINRA Rule 2150(b)", True),
    ("FINRA Rule 2150(b)", "finra  rule 2150 (b)", True),
    ("FINRA Rule 2150(b)", "FINRA 2150", True),
    ("FINRA Rule 2150(a)", "FINRA Rule 2150(b)", True),  # same rule, another paragraph
    ("FINRA Rule 2150(b)", "FINRA Rule 21500", False),
    ("FINRA Rule 2150(b)", "FINRA Rule 2010", False),
    ("SEC Rule 10b-5 (Exchange Act Section 10(b))", "Rule 10b-5", True),
    ("SEC Rule 10b-5 (Exchange Act Section 10(b))", "SEC rule 10b5", True),
    ("SEC Rule 10b-5 (Exchange Act Section 10(b))", "Rule 10b5-1", False),
    ("Advisers Act Rule 206(4)-1(a)(5)", "the Marketing Rule, 206(4)-1", True),
    ("Advisers Act Rule 206(4)-1(a)(5)", "Rule 206(4)-7", False),
    ("SEC Regulation Best Interest, Exchange Act Rule 15l-1(a)(2)(ii)", "Reg BI, Rule 15l-1", True),
    ("SEA Rule 17a-4(b)(4); FINRA Rule 4511", "FINRA Rule 4511", True),
    ("SEA Rule 17a-4(b)(4); FINRA Rule 4511", "SEA Rule 17a-4", True),
    ("FINRA Rule 2111.05(c)", "FINRA Rule 2111", True),
    ("Regulation Best Interest", "regulation best-interest", True),
    ("FINRA Rule 3270", "None", False),
    ("FINRA Rule 3270", None, False),
    ("FINRA Rule 3270", NAN, False),
    ("", "FINRA Rule 3270", False),
])
def test_citation_match(gold, pred, expected):
    assert citation_match(gold, pred) is expected
