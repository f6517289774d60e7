"""Detection metrics over a predictions table, as one JSON-serialisable dict.

NON_COMPLIANT is the positive class. A prediction whose verdict could not be read is scored as
the wrong answer (the opposite of gold) and counted in ``verdict.n_unparseable``, so a model
cannot look better by failing to answer. Topic and severity are scored on every example
("None" / "NONE" is the class of compliant ones); a missing prediction is the label
``<unparseable>``, which never equals gold. Macro-F1 averages over the gold classes only, so a
hallucinated topic costs recall of the true class rather than adding a class of its own.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from pipeline.inference.parsing import VALID_STATUSES

NOT_GENERATED = "not_generated"  # parse_status of probability-only predictions
from pipeline.schema import (
    NONE_LABEL,
    SEVERITIES,
    VERDICTS,
    collapse_ws,
    normalize_none_label,
    normalize_severity,
    normalize_verdict,
)

PREDICTION_COLUMNS = (
    "id", "gold_verdict", "gold_topic", "gold_severity", "gold_rule", "format", "source", "pred_verdict",
    "pred_topic", "pred_severity", "pred_rule", "parse_status", "p_violation", "grounded_rate", "n_quotes",
)
POSITIVE = "NON_COMPLIANT"
UNPARSEABLE = "<unparseable>"
N_BINS = 10
# A rule number after "Rule": 2150(b) -> 2150, 10b-5, 206(4)-1(a)(5) -> 206(4)-1, 15l-1(a) -> 15l-1.
_RULE_NUMBER = re.compile(r"\brules?\s+(\d+[a-z]?(?:\(\d+\))?(?:-\d+)?)", re.IGNORECASE)
_DASHES = re.compile(r"[\-\u2010-\u2015]")


def citation_match(gold: object, pred: object) -> bool:
    """Does the predicted citation name the gold rule?

    True when both are equal after normalisation (lowercase, the word "rule" and punctuation
    removed, whitespace collapsed), or when a rule number of gold (``2150``, ``10b-5``,
    ``206(4)-1``, ``15l-1``, ``17a-4``; any of several) occurs in pred as a whole number:
    paragraph letters differ legitimately (``2150(a)`` vs ``2150``), ``21500`` is another rule.
    """
    if not isinstance(gold, str) or not isinstance(pred, str) or not gold.strip() or not pred.strip():
        return False
    if _norm_citation(gold) == _norm_citation(pred):
        return True
    haystack = _DASHES.sub("", pred.lower())
    for number in _RULE_NUMBER.findall(gold):
        needle = re.escape(_DASHES.sub("", number.lower()))
        if re.search(rf"(?<![0-9a-z.]){needle}(?![0-9a-z])", haystack):
            return True
    return False


def _norm_citation(text: str) -> str:
    text = re.sub(r"\brules?\b", " ", text.lower())
    return collapse_ws(re.sub(r"[^0-9a-z]+", " ", text))


def precision_at_prevalence(tpr: float | None, fpr: float | None, prevalence: float) -> float | None:
    """Precision expected where a share π = `prevalence` of communications violate.

    TPR·π / (TPR·π + FPR·(1-π)). Test sets are balanced; production is not, so this is the share
    of alerts a reviewer would find real.
    None when undefined (no rates, or no alerts at all).
    """
    if tpr is None or fpr is None:
        return None
    alerts = tpr * prevalence + fpr * (1 - prevalence)
    return tpr * prevalence / alerts if alerts > 0 else None


def compute_metrics(pred: pd.DataFrame, threshold: float = 0.5, prevalences=(0.01, 0.001)) -> dict:
    """All metrics of one run over a predictions table with PREDICTION_COLUMNS.

    Returns a nested dict of plain floats/ints/strings (NaN as None), ready for json.dump.
    Raises ValueError when columns are missing, the table is empty, a gold verdict is unknown
    or a p_violation lies outside [0, 1].
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise ValueError(f"predictions table lacks columns {missing}; it needs {list(PREDICTION_COLUMNS)}")
    if pred.empty:
        raise ValueError("predictions table is empty")
    df = pred.reset_index(drop=True)
    # Tables read back from Parquet/Arrow hold pandas' <NA> in text columns: make missing values None.
    text = [c for c in df.columns if c != "p_violation" and not pd.api.types.is_numeric_dtype(df[c])]
    df[text] = df[text].astype(object).where(df[text].notna(), None)
    gold = df["gold_verdict"].map(normalize_verdict)
    if gold.isna().any():
        bad = df.loc[gold.isna(), "gold_verdict"].unique()[:5].tolist()
        raise ValueError(f"gold_verdict must be one of {VERDICTS}; got {bad}")
    y_true = (gold == POSITIVE).to_numpy()
    pred_verdict = df["pred_verdict"].map(normalize_verdict)
    readable = pred_verdict.notna().to_numpy()
    y_pred = np.where(readable, (pred_verdict == POSITIVE).to_numpy(), ~y_true)
    notes: list[str] = []
    gold_topic, pred_topic = _topic_labels(df)
    gold_sev = df["gold_severity"].map(normalize_severity).fillna(UNPARSEABLE)
    pred_sev = df["pred_severity"].map(normalize_severity).fillna(UNPARSEABLE)
    topic_ok = (gold_topic == pred_topic).to_numpy()
    metrics = {
        "n": len(df),
        "n_violations": int(y_true.sum()),
        "threshold": threshold,
        "verdict": _verdict_block(y_true, y_pred, readable, prevalences),
        "probability": _probability_block(df, y_true, threshold, prevalences, notes),
        "topic": _label_block(gold_topic, pred_topic, [NONE_LABEL]),
        "severity": _label_block(gold_sev, pred_sev, list(SEVERITIES)),
        "rule": _rule_block(df, y_true),
        "json_validity": {
            # Probability-only (triage) runs generate nothing: no JSON to judge.
            "rate": (float(df.loc[generated, "parse_status"].isin(VALID_STATUSES).mean())
                     if (generated := df["parse_status"] != NOT_GENERATED).any() else None),
            "by_status": {str(k): int(v)
                          for k, v in df["parse_status"].fillna("missing").value_counts().items()},
            # Answers cut by max_new_tokens are budget, not format, failures: validity among the answers
            # that ended is what the verdict grammar guarantees (1.0 under engine.constrained).
            "truncated": int((df["parse_status"] == "truncated").sum()),
            "rate_finished": (float(df.loc[ended, "parse_status"].isin(VALID_STATUSES).mean())
                              if (ended := (df["parse_status"] != NOT_GENERATED)
                                  & (df["parse_status"] != "truncated")).any() else None),
        },
        "grounding": _grounding_block(df),
        "by_topic": _breakdown(gold_topic, y_true, y_pred, topic_ok),
        "by_format": _breakdown(df["format"].fillna("unknown"), y_true, y_pred, topic_ok),
        "by_source": _breakdown(df["source"].fillna("unknown"), y_true, y_pred, topic_ok),
        "notes": notes,
    }
    return _jsonable(metrics)


def headline(metrics: dict) -> dict[str, float | None]:
    """The figures a comparison of runs shows, by display name, from a `compute_metrics` dict."""
    first_prevalence = next(iter(metrics["probability"]["precision_at_prevalence"]), None)
    return {
        "verdict accuracy": metrics["verdict"]["accuracy"],
        "verdict precision": metrics["verdict"]["precision"],
        "verdict recall": metrics["verdict"]["recall"],
        "verdict F1": metrics["verdict"]["f1"],
        "ROC-AUC": metrics["probability"]["roc_auc"],
        "PR-AUC": metrics["probability"]["pr_auc"],
        f"precision @ {float(first_prevalence or 'nan') * 100:g}% prevalence": (
            metrics["probability"]["precision_at_prevalence"].get(first_prevalence)),
        "topic accuracy": metrics["topic"]["accuracy"],
        "topic macro-F1": metrics["topic"]["macro_f1"],
        "severity accuracy": metrics["severity"]["accuracy"],
        "rule match": metrics["rule"]["match_rate"],
        "JSON validity": metrics["json_validity"]["rate"],
        "grounding rate": metrics["grounding"]["rate"],
    }


def _topic_labels(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    gold = df["gold_topic"].map(
        lambda t: normalize_none_label(collapse_ws(t)) if isinstance(t, str) else NONE_LABEL)
    # Case and spacing slips ("guarantees against loss") count as the gold label, spelled as gold spells it.
    canonical = {label.casefold(): label for label in gold.unique()}

    def read(topic: object) -> str:
        if not isinstance(topic, str):
            return UNPARSEABLE
        topic = normalize_none_label(collapse_ws(topic))
        return canonical.get(topic.casefold(), topic)

    return gold, df["pred_topic"].map(read)


def _rates(y_true: np.ndarray, y_hat: np.ndarray) -> tuple[float | None, float | None]:
    tn, fp, fn, tp = confusion_matrix(y_true, y_hat, labels=[False, True]).ravel()
    return (tp / (tp + fn) if tp + fn else None), (fp / (fp + tn) if fp + tn else None)


def _verdict_block(y_true, y_pred, readable, prevalences) -> dict:
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", pos_label=True, zero_division=np.nan)
    tpr, fpr = _rates(y_true, y_pred)
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision, "recall": recall, "f1": f1, "tpr": tpr, "fpr": fpr,
        "precision_at_prevalence": {f"{pi:g}": precision_at_prevalence(tpr, fpr, pi) for pi in prevalences},
        "n_unparseable": int((~readable).sum()),
        "unparseable_by_gold": {v: int(((~readable) & (y_true == (v == POSITIVE))).sum()) for v in VERDICTS},
        "confusion": {"labels": list(VERDICTS),
                      "matrix": confusion_matrix(y_true, y_pred, labels=[False, True]).tolist()},
    }


def _probability_block(df, y_true, threshold, prevalences, notes) -> dict:
    p = pd.to_numeric(df["p_violation"], errors="coerce").to_numpy(dtype=float)
    scored = ~np.isnan(p)
    if ((p[scored] < 0) | (p[scored] > 1)).any():
        raise ValueError(f"p_violation must lie in [0, 1]; {int(((p < 0) | (p > 1)).sum())} values do not")
    y, s = y_true[scored], p[scored]
    block: dict = {"n_scored": int(scored.sum()), "roc_auc": None, "pr_auc": None, "precision": None,
                   "recall": None, "tpr": None, "fpr": None, "brier": None, "ece": None, "calibration": [],
                   "precision_at_prevalence": {f"{pi:g}": None for pi in prevalences}}
    if not scored.any():
        notes.append("no p_violation values: ROC-AUC, PR-AUC, threshold metrics and calibration skipped")
        return block
    if scored.sum() < len(p):
        notes.append(f"p_violation missing for {len(p) - int(scored.sum())} rows; "
                     "probability metrics use the rest")
    if len(np.unique(y)) == 2:
        block["roc_auc"] = roc_auc_score(y, s)
        block["pr_auc"] = average_precision_score(y, s)
    else:
        notes.append("one class only among scored rows: ROC-AUC and PR-AUC skipped")
    y_hat = s >= threshold
    tpr, fpr = _rates(y, y_hat)
    block.update(recall=tpr, tpr=tpr, fpr=fpr, precision=y[y_hat].mean() if y_hat.any() else None)
    block["precision_at_prevalence"] = {f"{pi:g}": precision_at_prevalence(tpr, fpr, pi)
                                        for pi in prevalences}
    block["brier"] = brier_score_loss(y, s, labels=[False, True])
    bins = np.minimum((s * N_BINS).astype(int), N_BINS - 1)  # p = 1.0 falls in the last bin
    ece = 0.0
    for b in range(N_BINS):
        inside = bins == b
        count = int(inside.sum())
        mean_p = s[inside].mean() if count else None
        observed = y[inside].mean() if count else None
        if count:
            ece += count / len(s) * abs(mean_p - observed)
        block["calibration"].append({"lo": b / N_BINS, "hi": (b + 1) / N_BINS, "count": count,
                                     "mean_predicted": mean_p, "observed_rate": observed})
    block["ece"] = ece
    return block


def _label_block(gold: pd.Series, pred: pd.Series, first: list[str]) -> dict:
    gold_labels = [x for x in first if x in set(gold)] + sorted(set(gold) - set(first))
    extra = sorted(set(pred) - set(gold_labels) - {UNPARSEABLE})
    labels = gold_labels + extra + ([UNPARSEABLE] if (pred == UNPARSEABLE).any() else [])
    return {
        "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, labels=gold_labels, average="macro", zero_division=0),
        "n_gold_classes": len(gold_labels),
        "confusion": {"labels": labels, "matrix": confusion_matrix(gold, pred, labels=labels).tolist()},
    }


def _rule_block(df: pd.DataFrame, y_true: np.ndarray) -> dict:
    rows = df.loc[y_true, ["gold_rule", "pred_rule"]]
    matches = [citation_match(g, p) for g, p in zip(rows["gold_rule"], rows["pred_rule"], strict=True)]
    return {"n": len(matches), "matched": int(sum(matches)),
            "match_rate": float(np.mean(matches)) if matches else None}


def _grounding_block(df: pd.DataFrame) -> dict:
    rate = pd.to_numeric(df["grounded_rate"], errors="coerce")
    quotes = pd.to_numeric(df["n_quotes"], errors="coerce").fillna(0)
    counted = rate.notna() & (quotes > 0)
    n_quotes = float(quotes[counted].sum())
    grounded = float((rate * quotes)[counted].sum())
    return {"n_quotes": int(round(n_quotes)), "n_grounded": int(round(grounded)),
            "n_predictions_with_quotes": int(counted.sum()),
            "rate": grounded / n_quotes if n_quotes else None}


def _breakdown(key: pd.Series, y_true, y_pred, topic_ok) -> list[dict]:
    rows = []
    for value, index in key.groupby(key, sort=False).groups.items():
        i = np.asarray(index)
        violations = y_true[i]
        rows.append({
            "key": str(value), "n": len(i), "n_violations": int(violations.sum()),
            "verdict_accuracy": float((y_true[i] == y_pred[i]).mean()),
            "recall": float(y_pred[i][violations].mean()) if violations.any() else None,
            "topic_accuracy": float(topic_ok[i].mean()),
        })
    return sorted(rows, key=lambda r: (-r["n"], r["key"]))


def _jsonable(value):
    """numpy scalars -> Python, NaN/inf -> None, tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


__all__ = ["PREDICTION_COLUMNS", "POSITIVE", "UNPARSEABLE", "citation_match", "compute_metrics", "headline",
           "precision_at_prevalence"]
