"""The audits of one evaluation run, as a JSON block for metrics.json and as report sections.

`evaluation_audits` gathers what `pipeline.evaluate.audits` and `pipeline.evaluate.calibration` compute from a run's
predictions: pair consistency, the calibration audit (with the model folder's ``calibration.json``
applied when there is one), the bag-of-words shortcut baseline (trained on the prepared train split
the run or the model's training names) and the manipulation flip rate. `audit_blocks` renders them as
the report's blocks (the block tuples of `pipeline.evaluate.report`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluate.audits import MANIPULATED_SUFFIX, flip_rate, pair_consistency
from pipeline.shortcut_audit import shortcut_audit_from_prepared
from pipeline.evaluate.calibration import calibration_block, fit_calibration, load_calibration
from pipeline.schema import normalize_verdict

log = logging.getLogger(__name__)


def split_manipulated(pred: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(original rows, manipulated rows) of a predictions table, by the id suffix `injected_examples` adds."""
    injected = pred["id"].astype(str).str.endswith(MANIPULATED_SUFFIX)
    return pred[~injected].reset_index(drop=True), pred[injected].reset_index(drop=True)


def manipulation_audit(pred: pd.DataFrame, manipulated: pd.DataFrame) -> dict:
    """`flip_rate` of the manipulated predictions against the same examples' original predictions."""
    original = pred.set_index(pred["id"].astype(str))
    ids = manipulated["id"].astype(str).str.removesuffix(MANIPULATED_SUFFIX)
    known = ids.isin(original.index).to_numpy()
    before = original.loc[ids[known], "pred_verdict"].tolist()
    result = flip_rate(before, manipulated.loc[known, "pred_verdict"].tolist(),
                       original.loc[ids[known], "gold_verdict"].tolist())
    return {**result, "n_injected": int(len(manipulated))}


def model_prepared_dir(model_dir: str | Path) -> str | None:
    """The prepared folder a training artifact was trained on (its training_config.json), or None."""
    path = Path(model_dir) / "training_config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("data", {}).get("prepared_dir")


def evaluation_audits(pred: pd.DataFrame, model_dir: str | Path | None, prepared_dir: str | None,
                      split: str | None, threshold: float, manipulated: pd.DataFrame | None = None) -> dict:
    """All audits of one run; JSON-ready.

    `pred`: the run's predictions (``id``, ``scenario``, ``gold_verdict``, ``pred_verdict``,
    ``p_violation``); `model_dir`: the adapter or model folder (its ``calibration.json``, and its
    ``training_config.json`` for the train split when `prepared_dir` is None); `split`: the prepared split
    evaluated, or None for raw files (then the evaluated rows are scored as "evaluated set");
    `manipulated`: predictions of `injected_examples`, or None (audit skipped).
    """
    gold = (pred["gold_verdict"].map(normalize_verdict) == "NON_COMPLIANT").to_numpy()
    calibration = load_calibration(model_dir) if model_dir and Path(model_dir).is_dir() else None
    p = raw_probability(pred)
    audits = {"pair_consistency": pair_consistency(pred),
              "calibration": calibration_block(p, gold, calibration, threshold),
              "manipulation": manipulation_audit(pred, manipulated) if manipulated is not None and len(manipulated)
              else {"skipped": "no manipulated examples were evaluated"}}
    audits["cascade"] = cascade_block(pred, model_dir, threshold)
    train_dir = prepared_dir or (model_prepared_dir(model_dir) if model_dir else None)
    if not train_dir or "://" in train_dir or not (Path(train_dir) / "split=train").is_dir():
        audits["shortcut"] = {"skipped": f"no local prepared train split to train the baseline on ({train_dir})"}
    else:
        evaluated = {} if split else {"evaluated set": (pred["scenario"].tolist(), pred["gold_verdict"].tolist())}
        splits = ("test",) if split in (None, "train") else (split,)
        audits["shortcut"] = shortcut_audit_from_prepared(train_dir, evaluated, splits=splits)
    return audits


def cascade_block(pred: pd.DataFrame, model_dir: str | Path | None, threshold: float) -> dict:
    """The cascade audit: with the model folder's bag-of-words first stage (pipeline/cascade.py) in front of
    the LLM, the recall it costs and the share of messages it spares on this set; skipped without one."""
    from pipeline.cascade import cascade_audit, first_stage_scores, load_cascade

    loaded = load_cascade(model_dir) if model_dir and Path(model_dir).is_dir() else None
    if loaded is None:
        return {"skipped": "the model folder has no cascade.json (train.cascade_recall fits one)"}
    model, cascade = loaded
    gold = (pred["gold_verdict"].map(normalize_verdict) == "NON_COMPLIANT").to_numpy()
    p = pd.to_numeric(pred["p_violation"], errors="coerce").to_numpy(dtype=float)
    return cascade_audit(first_stage_scores(model, pred["scenario"].tolist()), p, gold, cascade, threshold)


def raw_probability(pred: pd.DataFrame) -> np.ndarray:
    """The engine's uncalibrated P(NON_COMPLIANT) of each prediction (``p_violation_raw``; older prediction
    files have only ``p_violation``, which was raw then): calibration is fitted and audited on it."""
    column = "p_violation_raw" if "p_violation_raw" in pred else "p_violation"
    return pd.to_numeric(pred[column], errors="coerce").to_numpy(dtype=float)


def fit_run_calibration(pred: pd.DataFrame, out_dir: str | Path, fitted_on: str) -> Path | None:
    """Fit a temperature scale on a run's p_violation (a validation-split run) and write
    ``calibration.json`` into `out_dir`; None (logged) when the run lacks probabilities of both verdicts.
    Copy the file into the adapter folder for the engine and later evaluations to use it."""
    gold = (pred["gold_verdict"].map(normalize_verdict) == "NON_COMPLIANT").to_numpy()
    p = raw_probability(pred)
    scored = ~np.isnan(p)
    if len(np.unique(gold[scored])) < 2:
        log.warning("no calibration fitted: the run has no probabilities for both verdicts")
        return None
    return fit_calibration(p, gold, fitted_on=fitted_on).save(out_dir)


def _fmt(x: object) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    return str(x) if isinstance(x, int) else f"{x:.3f}"


def _threshold_of(audits: dict) -> str:
    return f"{audits['calibration']['threshold']:g}"


def audit_blocks(audits: dict) -> list[tuple]:
    """The report's "Audits" sections (heading, paragraph and table blocks) from `evaluation_audits`."""
    blocks: list[tuple] = [("h2", "Audits")]
    shortcut = audits.get("shortcut", {})
    blocks.append(("h3", "Shortcut baseline (bag of words)"))
    if "skipped" in shortcut:
        blocks.append(("p", f"Skipped: {shortcut['skipped']}."))
    else:
        blocks += [("p", f"TF-IDF 1-2 grams + logistic regression trained on {shortcut['n_train']} train texts. "
                         + (f"Warning: {shortcut['warning']}." if shortcut["warning"]
                            else "It is not near-perfect: word choice alone does not give the labels away.")),
                   ("table", ["set", "n", "accuracy", "F1", "ROC-AUC"],
                    [[name, _fmt(s["n"]), _fmt(s["accuracy"]), _fmt(s["f1"]), _fmt(s["roc_auc"])]
                     for name, s in shortcut["sets"].items()])]
    pairs = audits["pair_consistency"]
    blocks += [("h3", "Pair consistency"),
               ("p", f"{pairs['n_same_verdict']} of {pairs['n_pairs']} pairs ({_fmt(pairs['same_verdict_rate'])}) got "
                     f"the same verdict for both versions ({pairs['n_both_compliant']} both COMPLIANT, "
                     f"{pairs['n_both_non_compliant']} both NON_COMPLIANT); {pairs['n_both_correct']} fully correct; "
                     f"{pairs['n_incomplete']} items without two scored versions.")]
    manipulation = audits["manipulation"]
    blocks.append(("h3", "Manipulation robustness"))
    blocks.append(("p", f"Skipped: {manipulation['skipped']}." if "skipped" in manipulation else
                   f"Reviewer-manipulation text injected into {manipulation['n_injected']} violations: "
                   f"{manipulation['n_flipped']} of {manipulation['n_eligible']} caught violations turned COMPLIANT "
                   f"(flip rate {_fmt(manipulation['flip_rate'])}); {manipulation['n_unreadable_after']} "
                   "answers became unreadable."))
    cascade = audits.get("cascade", {"skipped": "not computed"})
    blocks.append(("h3", "Cascade (bag-of-words first stage)"))
    blocks.append(("p", f"Skipped: {cascade['skipped']}." if "skipped" in cascade else
                   f"The first stage (threshold {cascade['threshold']:.4f}, chosen on validation for recall "
                   f"{cascade['target_recall']:.2f}: {_fmt(cascade['validation_recall'])} there, sparing "
                   f"{_fmt(cascade['validation_spared'])}) spares the LLM {_fmt(cascade['spared'])} of these "
                   f"{cascade['n']} messages. Recall at p >= {_threshold_of(audits)}: LLM alone "
                   f"{_fmt(cascade['llm_recall'])}, cascade {_fmt(cascade['cascade_recall'])} (cost "
                   f"{_fmt(cascade['recall_cost'])}); the first stage alone keeps {_fmt(cascade['first_stage_recall'])} "
                   "of the violations."))
    cal = audits["calibration"]
    scale = cal["calibration"]
    blocks += [("h3", "Calibration"),
               ("p", (f"{scale['method']} scale T={scale['temperature']:.3f}, b={scale['bias']:.3f} "
                      f"(fitted on {scale['fitted_on']}): " if scale else "No calibration.json with the model: ")
                + f"ECE ({cal['n_scored']} rows) {_fmt(cal['ece_before'])} before, {_fmt(cal['ece_after'])} after; "
                  f"at p >= {cal['threshold']}: precision {_fmt(cal['precision'])}, recall {_fmt(cal['recall'])}.")]
    if cal["prevalence"]:
        prev = cal["prevalence"]
        blocks.append(("table", ["prevalence", "precision", f"{prev['level']:.0%} CI (bootstrap, {prev['n_boot']})"],
                       [[f"{float(k) * 100:g}%", _fmt(e["precision"]), f"{_fmt(e['ci_low'])} – {_fmt(e['ci_high'])}"]
                        for k, e in prev["by_prevalence"].items()]))
        if "fpr_rule_of_three" in prev:
            blocks.append(("p", f"No false alarm among {prev['n_negative']} non-violations, but the FPR may still be "
                                f"up to {prev['fpr_rule_of_three']:.3g} (95%); precision at low prevalence can be "
                                "far lower than shown."))
    return blocks


__all__ = ["audit_blocks", "cascade_block", "evaluation_audits", "fit_run_calibration", "manipulation_audit", "raw_probability",
           "model_prepared_dir", "split_manipulated"]
