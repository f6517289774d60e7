"""Calibration on a crafted over-confident set: the fitted scale lowers ECE, CIs hold the estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.evaluate.calibration import (
    CALIBRATION_FILE,
    Calibration,
    apply_calibration,
    calibration_block,
    expected_calibration_error,
    fit_calibration,
    load_calibration,
    prevalence_precision,
    verdict_logit,
)
from pipeline.evaluate.metrics import precision_at_prevalence


def over_confident(n: int, seed: int, scale: float = 3.0, shift: float = 0.0):
    """Labels drawn from sigmoid(true logit); the model reports sigmoid(scale * true logit + shift)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    return 1 / (1 + np.exp(-(scale * z + shift))), y


def test_temperature_scaling_lowers_ece_and_finds_the_temperature():
    p, y = over_confident(4000, 0)
    cal = fit_calibration(p, y)
    assert cal.method == "temperature" and cal.bias == 0.0 and cal.n_fit == 4000
    assert 2.5 < cal.temperature < 3.5  # the over-confidence factor that was put in
    assert cal.ece_after < cal.ece_before / 2 and cal.nll_after < cal.nll_before
    p_new, y_new = over_confident(4000, 1)  # and it holds on data it was not fitted on
    assert expected_calibration_error(cal.apply(p_new), y_new) < expected_calibration_error(p_new, y_new) / 2


def test_platt_scaling_also_removes_a_bias():
    p, y = over_confident(4000, 2, scale=2.0, shift=1.5)
    temperature_only, platt = fit_calibration(p, y), fit_calibration(p, y, method="platt")
    assert platt.ece_after < temperature_only.ece_after and platt.nll_after < temperature_only.nll_after
    assert platt.bias == pytest.approx(-0.75, abs=0.25)  # (2z + 1.5) / 2 - 0.75 = z


def test_apply_is_the_scaled_logit():
    p = np.array([0.01, 0.5, 0.9, 1.0, 0.0])
    np.testing.assert_allclose(apply_calibration(p, 1.0), np.clip(p, 1e-6, 1 - 1e-6), rtol=1e-9)
    np.testing.assert_allclose(verdict_logit(apply_calibration(p, 2.0, 0.5)), verdict_logit(p) / 2 + 0.5, rtol=1e-6)


def test_fit_needs_both_classes():
    with pytest.raises(ValueError, match="both verdicts"):
        fit_calibration([0.2, 0.9, np.nan], [1, 1, 0])


def test_bootstrap_intervals_contain_the_point_estimate():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(200, bool), np.zeros(800, bool)]
    y_hat = np.where(y, rng.random(1000) < 0.8, rng.random(1000) < 0.05)
    result = prevalence_precision(y_hat, y, n_boot=1000)
    assert list(result["by_prevalence"]) == ["0.01", "0.001", "0.0001"]
    assert result["tpr"] == y_hat[y].mean() and result["fpr"] == y_hat[~y].mean()
    for pi, entry in result["by_prevalence"].items():
        assert entry["precision"] == pytest.approx(precision_at_prevalence(result["tpr"], result["fpr"], float(pi)))
        assert entry["ci_low"] < entry["precision"] < entry["ci_high"]
    # rarer violations, lower precision
    precisions = [e["precision"] for e in result["by_prevalence"].values()]
    assert precisions == sorted(precisions, reverse=True) and "fpr_rule_of_three" not in result


def test_no_false_alarm_reports_the_rule_of_three_bound():
    y = np.r_[np.ones(50, bool), np.zeros(300, bool)]
    result = prevalence_precision(y.copy(), y, prevalences=(0.001,))
    entry = result["by_prevalence"]["0.001"]
    assert entry["precision"] == entry["ci_low"] == entry["ci_high"] == 1.0
    assert result["fpr_rule_of_three"] == pytest.approx(0.01)
    assert entry["precision_if_fpr_rule_of_three"] == pytest.approx(0.001 / (0.001 + 0.01 * 0.999))


def test_calibration_block_before_and_after():
    p, y = over_confident(2000, 4)
    cal = fit_calibration(p[:1000], y[:1000])
    block = calibration_block(np.r_[p[1000:], np.nan], np.r_[y[1000:], True], cal, threshold=0.5, n_boot=200)
    assert block["n_scored"] == 1000 and block["calibration"]["temperature"] == cal.temperature
    assert block["ece_after"] < block["ece_before"]
    hat = cal.apply(p[1000:]) >= 0.5
    assert block["precision"] == pytest.approx(y[1000:][hat].mean())
    assert block["recall"] == pytest.approx(hat[y[1000:]].mean())
    assert set(block["prevalence"]["by_prevalence"]) == {"0.01", "0.001", "0.0001"}
    json.dumps(block, allow_nan=False)  # plain JSON
    raw = calibration_block(p, y, None, n_boot=10)
    assert raw["calibration"] is None and raw["ece_after"] is None and raw["ece_before"] > 0.05


def test_calibration_json_round_trips(tmp_path):
    p, y = over_confident(500, 5)
    cal = fit_calibration(p, y, method="platt", fitted_on="runs/prepared/split=validation")
    path = cal.save(tmp_path / "adapter")
    assert path.name == CALIBRATION_FILE
    loaded = load_calibration(tmp_path / "adapter")
    assert loaded == cal
    np.testing.assert_array_equal(loaded.apply(p), cal.apply(p))
    assert load_calibration(tmp_path) is None
    path.write_text(json.dumps({**json.loads(path.read_text()), "temperature": -1}))
    with pytest.raises(ValueError, match="not a valid calibration file"):
        load_calibration(tmp_path / "adapter")
    assert isinstance(Calibration.model_json_schema()["properties"]["temperature"]["description"], str)
