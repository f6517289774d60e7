"""A first stage much cheaper than the LLM: the bag of words decides which messages the LLM never needs to read.

The stage is the shortcut audit's own model (`pipeline.shortcut_audit.fit_bag_of_words`: TF-IDF 1-2 grams +
logistic regression, microseconds a message on a CPU), trained on the prepared train split. Its threshold is
the highest score that still keeps `target_recall` of the validation split's violations above it, so by
construction it drops at most 1 - target_recall of the violations it was tuned on; everything below the
threshold is spared the LLM. Fitted at the end of training (`train.cascade_recall`) and stored in the
artifact as ``cascade.json`` (the threshold and what it cost on validation) beside ``cascade_bow.json``
(the model as plain JSON, no pickle). Archive scoring applies it (`score.cascade`); the evaluation report
states the recall it costs and the share of messages it spares on the evaluated set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

CASCADE_FILE = "cascade.json"
CASCADE_MODEL_FILE = "cascade_bow.json"


class Cascade(BaseModel):
    """The first stage's operating point, chosen on the validation split."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(..., description="Bag-of-words P(NON_COMPLIANT) below which the LLM is skipped.")
    target_recall: float = Field(..., gt=0, le=1, description="Share of validation violations the stage must keep.")
    validation_recall: float = Field(..., description="Share of validation violations at or above the threshold.")
    validation_spared: float = Field(..., description="Share of validation messages below the threshold.")
    n_train: int = Field(..., ge=2, description="Train-split texts the bag of words was fitted on.")
    n_validation: int = Field(..., ge=1, description="Validation texts the threshold was chosen on.")
    fitted_on: str = Field(..., description="The prepared folder.")
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            description="When it was fitted (UTC).")


def recall_threshold(scores, labels, target_recall: float) -> float:
    """The highest threshold t with recall(scores >= t) >= target_recall on `labels` (True = violation).

    Raises ValueError when `labels` hold no violation.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    positives = np.sort(s[y])[::-1]
    if not len(positives):
        raise ValueError("choosing a recall threshold needs at least one violation")
    keep = int(np.ceil(target_recall * len(positives)))  # the violations that must stay above the threshold
    return float(positives[max(keep, 1) - 1])


def fit_cascade(prepared_dir: str, target_recall: float = 0.98, seed: int = 0):
    """(model, Cascade): the bag of words trained on ``split=train``, its threshold chosen on
    ``split=validation`` for `target_recall`. Raises ValueError when a split lacks a verdict."""
    from pipeline.shortcut_audit import fit_bag_of_words, violation_labels
    from pipeline.train.calibrate import read_split

    texts, labels = read_split(prepared_dir, "train")
    model = fit_bag_of_words(texts, labels, seed)
    val_texts, val_labels = read_split(prepared_dir, "validation")
    y = violation_labels(val_labels)
    scores = model.predict_proba(val_texts)[:, 1]
    threshold = recall_threshold(scores, y, target_recall)
    cascade = Cascade(threshold=threshold, target_recall=target_recall,
                      validation_recall=float((scores[y] >= threshold).mean()),
                      validation_spared=float((scores < threshold).mean()), n_train=len(texts),
                      n_validation=len(val_texts), fitted_on=str(prepared_dir))
    return model, cascade


def save_cascade(model, cascade: Cascade, folder: str | Path) -> Path:
    """Write ``cascade.json`` and ``cascade_bow.json`` into `folder`; return the first."""
    from pipeline.shortcut_audit import save_bag_of_words

    folder = Path(folder)
    save_bag_of_words(model, folder / CASCADE_MODEL_FILE)
    path = folder / CASCADE_FILE
    path.write_text(cascade.model_dump_json(indent=2))
    return path


def load_cascade(folder: str | Path | None):
    """(model, Cascade) from `folder`, or None when it holds no ``cascade.json``. Raises ValueError when the
    files are invalid or the model file is missing."""
    from pipeline.shortcut_audit import load_bag_of_words

    if not folder or not (Path(folder) / CASCADE_FILE).is_file():
        return None
    folder = Path(folder)
    try:
        cascade = Cascade.model_validate_json((folder / CASCADE_FILE).read_text())
    except ValueError as e:
        raise ValueError(f"{folder / CASCADE_FILE} is not a valid cascade file: {e}") from e
    if not (folder / CASCADE_MODEL_FILE).is_file():
        raise ValueError(f"{folder / CASCADE_FILE} names a first stage but {CASCADE_MODEL_FILE} is missing")
    return load_bag_of_words(folder / CASCADE_MODEL_FILE), cascade


def first_stage_scores(model, texts: Sequence[str]) -> np.ndarray:
    """The bag of words' P(NON_COMPLIANT) of each text."""
    return model.predict_proba(list(texts))[:, 1]


def cascade_audit(first, p_llm, labels, cascade: Cascade, threshold: float) -> dict:
    """What the first stage costs and saves on one evaluated set, JSON-ready.

    `first`: the stage's scores; `p_llm`: the LLM's P(NON_COMPLIANT) (NaN rows count as not flagged);
    `labels`: True = violation; `threshold`: the LLM's flagging threshold. Recall of the LLM alone and of
    the cascade (flagged only when both stages pass), the recall the stage costs, and the share of
    messages it spares the LLM.
    """
    first = np.asarray(first, dtype=float)
    p = np.nan_to_num(np.asarray(p_llm, dtype=float), nan=-1.0)
    y = np.asarray(labels, dtype=bool)
    passes = first >= cascade.threshold
    alone, both = p >= threshold, passes & (p >= threshold)
    recall = (lambda flagged: float(flagged[y].mean()) if y.any() else None)
    out = {"threshold": cascade.threshold, "target_recall": cascade.target_recall,
           "validation_recall": cascade.validation_recall, "validation_spared": cascade.validation_spared,
           "n": int(len(y)), "first_stage_recall": recall(passes), "spared": float((~passes).mean()) if len(y) else None,
           "llm_recall": recall(alone), "cascade_recall": recall(both)}
    out["recall_cost"] = (out["llm_recall"] - out["cascade_recall"]) if y.any() else None
    return out


__all__ = ["CASCADE_FILE", "CASCADE_MODEL_FILE", "Cascade", "cascade_audit", "first_stage_scores", "fit_cascade",
           "load_cascade", "recall_threshold", "save_cascade"]
