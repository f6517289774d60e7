"""Calibration of P(NON_COMPLIANT): a temperature (or Platt) scale fitted on the validation split.

The engine's probability comes from one forward pass over two decision tokens; fine-tuning makes it
over-confident. The scale works on its logit z = log p - log(1 - p): calibrated p = sigmoid(z / T + b)
(temperature scaling: b = 0; Platt: b fitted too). It is fitted by minimising the negative
log-likelihood on validation predictions, stored as ``calibration.json`` next to the adapter, and
applied to every probability the engine returns.

`calibration_block` is the audit the evaluation reports: ECE before / after, precision and recall at a
threshold, and precision at low prevalences (1%, 0.1%, 0.01%) with bootstrap confidence intervals:
test sets are balanced, production is not, and at 0.01% prevalence a handful of false alarms decide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.evaluate.metrics import precision_at_prevalence

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 15
PREVALENCES = (0.01, 0.001, 0.0001)
_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit: 0 and 1 have none


def verdict_logit(p: np.ndarray) -> np.ndarray:
    """log p - log(1 - p), with p clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # overflow-free


class Calibration(BaseModel):
    """A fitted scale for P(NON_COMPLIANT): calibrated p = sigmoid(logit(p) / temperature + bias)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["temperature", "platt"] = Field(..., description="temperature: bias fixed at 0; platt: both fitted.")
    temperature: float = Field(..., gt=0, description="Divides the verdict logit; > 1 softens over-confident scores.")
    bias: float = Field(0.0, description="Added to the scaled logit (Platt); 0 for temperature scaling.")
    n_fit: int = Field(..., ge=2, description="Validation examples the scale was fitted on.")
    nll_before: float = Field(..., description="Mean negative log-likelihood of the raw probabilities.")
    nll_after: float = Field(..., description="Mean negative log-likelihood after the scale.")
    ece_before: float = Field(..., description=f"Expected calibration error ({ECE_BINS} bins) before.")
    ece_after: float = Field(..., description=f"Expected calibration error ({ECE_BINS} bins) after (on the fit set).")
    fitted_on: str = Field("validation", description="What the scale was fitted on (split name or path).")
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            description="When it was fitted (UTC).")

    def apply(self, p) -> np.ndarray:
        """Calibrated probabilities for raw probabilities `p` (any shape)."""
        return apply_calibration(p, self.temperature, self.bias)

    def save(self, folder: str | Path) -> Path:
        """Write ``calibration.json`` into `folder` (an adapter or evaluation folder); return its path."""
        path = Path(folder) / CALIBRATION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path


def apply_calibration(p, temperature: float, bias: float = 0.0) -> np.ndarray:
    """sigmoid(logit(p) / temperature + bias) for raw probabilities `p`."""
    return _sigmoid(verdict_logit(p) / temperature + bias)


def load_calibration(folder: str | Path) -> Calibration | None:
    """The ``calibration.json`` in `folder`, or None when there is none. Raises ValueError when it is invalid."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return Calibration.model_validate_json(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not a valid calibration file: {e}") from e


def _nll(z: np.ndarray, y: np.ndarray, temperature: float, bias: float) -> float:
    s = z / temperature + bias
    # -[y log sigmoid(s) + (1-y) log(1 - sigmoid(s))] = softplus(s) - y s, computed stably
    return float(np.mean(np.logaddexp(0, s) - y * s))


def fit_calibration(p, labels, method: Literal["temperature", "platt"] = "temperature",
                    fitted_on: str = "validation") -> Calibration:
    """Fit the scale on raw probabilities `p` and true labels (True / 1 = NON_COMPLIANT) by minimum NLL.

    Rows with a missing probability are left out. Raises ValueError with fewer than 2 scored rows or
    one class only (a scale fitted on one class only pushes every score towards it).
    """
    from scipy.optimize import minimize

    p = np.asarray(p, dtype=float)
    y = np.asarray(labels, dtype=float)
    keep = ~np.isnan(p)
    p, y = p[keep], y[keep]
    if len(p) < 2 or len(np.unique(y)) < 2:
        raise ValueError(f"calibration needs both verdicts among scored rows; got {len(p)} rows, "
                         f"{int(y.sum())} violations")
    z = verdict_logit(p)

    def loss(theta: np.ndarray) -> float:  # log-temperature keeps T > 0 without bounds
        return _nll(z, y, float(np.exp(theta[0])), float(theta[1]) if method == "platt" else 0.0)

    start = np.zeros(2 if method == "platt" else 1)
    result = minimize(loss, start, method="L-BFGS-B", bounds=[(-7.0, 7.0)] + [(-20.0, 20.0)] * (len(start) - 1))
    temperature = float(np.exp(result.x[0]))
    bias = float(result.x[1]) if method == "platt" else 0.0
    calibrated = apply_calibration(p, temperature, bias)
    cal = Calibration(method=method, temperature=temperature, bias=bias, n_fit=int(len(p)),
                      nll_before=_nll(z, y, 1.0, 0.0), nll_after=_nll(z, y, temperature, bias),
                      ece_before=expected_calibration_error(p, y), ece_after=expected_calibration_error(calibrated, y),
                      fitted_on=fitted_on)
    log.info("calibration (%s): T=%.3f b=%.3f, ECE %.3f -> %.3f on %d rows", method, temperature, bias,
             cal.ece_before, cal.ece_after, len(p))
    return cal


def expected_calibration_error(p, labels, n_bins: int = ECE_BINS) -> float:
    """Σ_bins (count / n) · |mean predicted - observed rate| over `n_bins` equal-width bins of [0, 1]."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(labels, dtype=float)
    if not len(p):
        raise ValueError("no probabilities to compute an ECE over")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)  # p = 1.0 falls in the last bin
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return float(ece)


def prevalence_precision(y_hat, labels, prevalences=PREVALENCES, n_boot: int = 1000, level: float = 0.95,
                         seed: int = 0) -> dict:
    """Precision at each prevalence π from the TPR and FPR of alerts `y_hat`, with a bootstrap CI.

    The bootstrap resamples violations and non-violations separately (the rates are estimated from
    each class on its own); a resampled mean of 0/1 outcomes is a binomial draw, so each of the
    `n_boot` resamples is drawn as one. Returns {"tpr", "fpr", "n_positive", "n_negative", "level",
    "n_boot", "by_prevalence": {"0.01": {"precision", "ci_low", "ci_high"}, ...}}; when no
    non-violation was flagged, also "fpr_rule_of_three" (3 / n negatives, the 95% upper bound of an
    FPR seen as 0) and each prevalence's "precision_if_fpr_rule_of_three".
    Raises ValueError when either class is missing.
    """
    y_hat = np.asarray(y_hat, dtype=bool)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise ValueError(f"precision at prevalence needs both classes; got {n_pos} violations, {n_neg} others")
    tpr, fpr = float(y_hat[y].mean()), float(y_hat[~y].mean())
    rng = np.random.default_rng(seed)
    tpr_b = rng.binomial(n_pos, tpr, n_boot) / n_pos
    fpr_b = rng.binomial(n_neg, fpr, n_boot) / n_neg
    tail = (1 - level) / 2 * 100
    out: dict = {"tpr": tpr, "fpr": fpr, "n_positive": n_pos, "n_negative": n_neg, "level": level,
                 "n_boot": n_boot, "by_prevalence": {}}
    if fpr == 0:
        out["fpr_rule_of_three"] = min(1.0, 3 / n_neg)
    for pi in prevalences:
        alerts = tpr_b * pi + fpr_b * (1 - pi)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = np.where(alerts > 0, tpr_b * pi / alerts, np.nan)
        finite = boot[~np.isnan(boot)]
        entry = {"precision": precision_at_prevalence(tpr, fpr, pi),
                 "ci_low": float(np.percentile(finite, tail)) if len(finite) else None,
                 "ci_high": float(np.percentile(finite, 100 - tail)) if len(finite) else None}
        if fpr == 0:
            entry["precision_if_fpr_rule_of_three"] = precision_at_prevalence(tpr, out["fpr_rule_of_three"], pi)
        out["by_prevalence"][f"{pi:g}"] = entry
    return out


def calibration_block(p, labels, calibration: Calibration | None = None, threshold: float = 0.5,
                      prevalences=PREVALENCES, n_boot: int = 1000, seed: int = 0) -> dict:
    """The calibration audit of one evaluation, JSON-ready.

    `p`: raw P(NON_COMPLIANT) (NaN rows are left out); `labels`: True / 1 = NON_COMPLIANT;
    `calibration`: the adapter's scale, or None (then "after" figures are None and the operating point
    uses the raw probabilities). Returns {"n_scored", "calibration" (the scale, or None), "ece_before",
    "ece_after", "threshold", "precision", "recall", "prevalence" (`prevalence_precision` of
    p >= threshold, or None when a class is missing)}.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(labels, dtype=bool)
    keep = ~np.isnan(p)
    p, y = p[keep], y[keep]
    block: dict = {"n_scored": int(len(p)), "calibration": calibration.model_dump() if calibration else None,
                   "ece_before": None, "ece_after": None, "threshold": threshold, "precision": None,
                   "recall": None, "prevalence": None}
    if not len(p):
        return block
    used = calibration.apply(p) if calibration else p
    block["ece_before"] = expected_calibration_error(p, y)
    block["ece_after"] = expected_calibration_error(used, y) if calibration else None
    y_hat = used >= threshold
    block["precision"] = float(y[y_hat].mean()) if y_hat.any() else None
    block["recall"] = float(y_hat[y].mean()) if y.any() else None
    if y.any() and (~y).any():
        block["prevalence"] = prevalence_precision(y_hat, y, prevalences, n_boot, seed=seed)
    return json.loads(json.dumps(block, default=float))  # numpy scalars -> plain JSON values


__all__ = ["CALIBRATION_FILE", "Calibration", "apply_calibration", "calibration_block", "expected_calibration_error",
           "fit_calibration", "load_calibration", "prevalence_precision", "verdict_logit"]
