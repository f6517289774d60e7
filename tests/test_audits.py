"""The audits on crafted data: a leaky and a cue-free dataset, crafted pair predictions and flips."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.audits import (
    flip_rate,
    inject_manipulation,
    injected_examples,
    manipulation_sentences,
    pair_consistency,
)
from pipeline.shortcut_audit import (
    SHORTCUT_WARNING,
    bag_of_words_baseline,
    fit_bag_of_words,
    load_bag_of_words,
    save_bag_of_words,
    shortcut_audit_from_prepared,
    violation_labels,
)

WORDS = ("portfolio account client market fund bond equity review meeting call email plan balance "
         "quarter statement transfer rate income tax retirement allocation update schedule office").split()


def _filler(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12))


def leaky_set(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Violations say "guaranteed", compliant versions say "disclosure": the label is one word."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        texts += [f"{_filler(rng)} guaranteed {_filler(rng)}", f"{_filler(rng)} disclosure {_filler(rng)}"]
        labels += ["NON_COMPLIANT", "COMPLIANT"]
    return texts, labels


def cue_free_set(n: int, seed: int) -> tuple[list[str], list[str]]:
    """The same filler vocabulary for both verdicts; the label is a coin flip independent of the words."""
    rng = random.Random(seed)
    texts = [f"{_filler(rng)} {_filler(rng)}" for _ in range(2 * n)]
    return texts, [rng.choice(["COMPLIANT", "NON_COMPLIANT"]) for _ in texts]


def test_shortcut_audit_flags_a_leaky_dataset():
    result = bag_of_words_baseline(*leaky_set(60, 0), {"test": leaky_set(20, 1), "extra": leaky_set(10, 2)})
    assert result["sets"]["test"]["accuracy"] >= 0.95
    assert result["sets"]["test"]["roc_auc"] >= 0.98
    assert result["sets"]["test"]["n"] == 40 and result["sets"]["test"]["n_violations"] == 20
    assert result["near_perfect"] == ["test", "extra"]
    assert result["warning"].startswith(SHORTCUT_WARNING) and "test, extra" in result["warning"]


def test_shortcut_audit_passes_a_cue_free_dataset():
    result = bag_of_words_baseline(*cue_free_set(150, 0), {"test": cue_free_set(100, 1)})
    test = result["sets"]["test"]
    assert 0.3 < test["accuracy"] < 0.7 and 0.3 < test["roc_auc"] < 0.7
    assert result["near_perfect"] == [] and result["warning"] is None


def test_shortcut_audit_skips_a_one_verdict_train_split():
    result = bag_of_words_baseline(["a b", "c d"], ["COMPLIANT", "COMPLIANT"], {"test": (["a"], ["COMPLIANT"])})
    assert "one verdict" in result["skipped"]


def test_shortcut_audit_from_a_prepared_folder(tmp_path):
    for split, (texts, labels) in {"train": leaky_set(60, 0), "test": leaky_set(20, 1)}.items():
        folder = tmp_path / f"split={split}"
        folder.mkdir()
        pd.DataFrame({"id": range(len(texts)), "scenario": texts, "final_verdict": labels}).to_parquet(
            folder / "part-0.parquet")
    model_path = tmp_path / "shortcut_model.json"
    result = shortcut_audit_from_prepared(tmp_path, extra_sets={"handwritten": cue_free_set(20, 3)},
                                          splits=("validation", "test"), save_to=model_path)
    assert list(result["sets"]) == ["test", "handwritten"]  # no validation split here: skipped, not an error
    assert result["n_train"] == 120 and result["near_perfect"] == ["test"]
    assert result["saved_to"] == str(model_path) and model_path.is_file()
    with pytest.raises(FileNotFoundError, match="split=train"):
        shortcut_audit_from_prepared(tmp_path / "nothing")


def test_saved_bag_of_words_predicts_like_the_fitted_one(tmp_path):
    model = fit_bag_of_words(*leaky_set(60, 0))
    texts = leaky_set(10, 5)[0] + ["a text with no known word at all"]
    loaded = load_bag_of_words(save_bag_of_words(model, tmp_path / "bow.json"))
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), rtol=1e-9, atol=1e-12)
    assert loaded.predict(["x guaranteed y"])[0] and not loaded.predict(["x disclosure y"])[0]


def test_violation_labels_reads_verdicts_and_numbers():
    assert violation_labels(["non-compliant", "COMPLIANT", "Non_Compliant"]).tolist() == [True, False, True]
    assert violation_labels([1, 0, True]).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="maybe"):
        violation_labels(["COMPLIANT", "maybe"])


def _pred(rows):
    return pd.DataFrame(rows, columns=["id", "gold_verdict", "pred_verdict"])


def test_pair_consistency_on_crafted_predictions():
    pred = _pred([
        ("f:1#c", "COMPLIANT", "COMPLIANT"), ("f:1#nc", "NON_COMPLIANT", "NON_COMPLIANT"),  # correct pair
        ("f:2#c", "COMPLIANT", "NON_COMPLIANT"), ("f:2#nc", "NON_COMPLIANT", "NON_COMPLIANT"),  # same: both NC
        ("f:3#c", "COMPLIANT", "COMPLIANT"), ("f:3#nc", "NON_COMPLIANT", "compliant"),  # same: both C
        ("f:4#c", "COMPLIANT", "NON_COMPLIANT"), ("f:4#nc", "NON_COMPLIANT", "COMPLIANT"),  # both wrong, differ
        ("f:5#c", "COMPLIANT", "COMPLIANT"), ("f:5#nc", "NON_COMPLIANT", None),  # unreadable: not counted
        ("f:6#nc", "NON_COMPLIANT", "NON_COMPLIANT"),  # single version: not counted
    ])
    result = pair_consistency(pred)
    assert result == {"n_pairs": 4, "n_same_verdict": 2, "same_verdict_rate": 0.5, "n_both_compliant": 1,
                      "n_both_non_compliant": 1, "n_both_correct": 1, "n_incomplete": 2}


def test_pair_consistency_prefers_item_id_and_handles_no_pairs():
    pred = _pred([("a", "COMPLIANT", "COMPLIANT"), ("b", "NON_COMPLIANT", "COMPLIANT")]).assign(item_id=["p", "p"])
    assert pair_consistency(pred)["n_same_verdict"] == 1
    alone = pair_consistency(_pred([("x#c", "COMPLIANT", "COMPLIANT")]))
    assert alone["n_pairs"] == 0 and alone["same_verdict_rate"] is None and alone["n_incomplete"] == 1


def test_flip_rate_counts_only_caught_violations():
    labels = ["NON_COMPLIANT"] * 5 + ["COMPLIANT"]
    before = ["NON_COMPLIANT", "NON_COMPLIANT", "NON_COMPLIANT", "NON_COMPLIANT", "COMPLIANT", "NON_COMPLIANT"]
    after = ["COMPLIANT", "non-compliant", None, "COMPLIANT", "COMPLIANT", "COMPLIANT"]
    assert flip_rate(before, after, labels) == {"n_eligible": 4, "n_flipped": 2, "flip_rate": 0.5,
                                                "n_unreadable_after": 1}
    assert flip_rate(["COMPLIANT"], ["COMPLIANT"], ["NON_COMPLIANT"])["flip_rate"] is None
    with pytest.raises(ValueError, match="lengths differ"):
        flip_rate(before, after[:-1], labels)


def test_inject_manipulation_keeps_the_text_and_adds_one_sentence():
    sentences = manipulation_sentences()
    assert len(sentences) >= 5 and not any(s.startswith("#") for s in sentences)
    text = "Client: can you help?\nAdvisor: sure.\nClient: thanks\nAdvisor: I guarantee 12% a year."
    injected = [inject_manipulation(text, seed) for seed in range(30)]
    assert injected[0] == inject_manipulation(text, 0)  # deterministic
    for out in injected:
        added = [s for s in sentences if s in out]
        assert len(added) == 1
        assert out.replace(added[0], "", 1).replace("\n", "") == text.replace("\n", "")
    starts = {out.startswith(tuple(sentences)) for out in injected}
    ends = {out.endswith(tuple(sentences)) for out in injected}
    assert starts == {True, False} and ends == {True, False}  # the position varies with the seed


def test_injected_examples_takes_violations_only():
    inputs = pd.DataFrame({"id": ["a#c", "a#nc", "b#nc"], "scenario": ["fine", "I guarantee it", "trust me"],
                           "final_verdict": ["COMPLIANT", "NON_COMPLIANT", "NON_COMPLIANT"]})
    out = injected_examples(inputs, seed=1)
    assert out["id"].tolist() == ["a#nc~manipulated", "b#nc~manipulated"]
    assert all(orig in new and new != orig for orig, new in zip(["I guarantee it", "trust me"], out["scenario"]))
    assert len(injected_examples(inputs, limit=1)) == 1


def test_evaluation_audits_and_their_report_sections(tmp_path):
    from pipeline.evaluate.audit_report import evaluation_audits, fit_run_calibration, split_manipulated
    from pipeline.evaluate.metrics import PREDICTION_COLUMNS, compute_metrics
    from pipeline.evaluate.report import write_report

    texts, labels = leaky_set(60, 0)
    (tmp_path / "prep" / "split=train").mkdir(parents=True)
    pd.DataFrame({"scenario": texts, "final_verdict": labels}).to_parquet(tmp_path / "prep" / "split=train" / "p.parquet")
    test_texts, test_labels = leaky_set(10, 1)
    rows = pd.DataFrame({c: None for c in PREDICTION_COLUMNS}, index=range(20)).assign(
        id=[f"f:{i // 2}#{'nc' if lab == 'NON_COMPLIANT' else 'c'}" for i, lab in enumerate(test_labels)],
        scenario=test_texts, gold_verdict=test_labels, pred_verdict="NON_COMPLIANT", parse_status="ok",
        p_violation=[0.9 if lab == "NON_COMPLIANT" else 0.4 for lab in test_labels], grounded_rate=np.nan, n_quotes=0)
    injected = rows[rows["gold_verdict"] == "NON_COMPLIANT"].assign(id=lambda d: d["id"] + "~manipulated")
    injected.loc[injected.index[:4], "pred_verdict"] = "COMPLIANT"
    pred, manipulated = split_manipulated(pd.concat([rows, injected]))
    assert len(pred) == 20 and len(manipulated) == 10
    model_dir = tmp_path / "adapter"
    assert fit_run_calibration(pred, model_dir, "crafted").name == "calibration.json"
    audits = evaluation_audits(pred, model_dir, None, None, 0.5, manipulated)  # no train split known
    assert audits["pair_consistency"]["same_verdict_rate"] == 1.0 and audits["pair_consistency"]["n_pairs"] == 10
    assert audits["manipulation"] == {"n_eligible": 10, "n_flipped": 4, "flip_rate": 0.4, "n_unreadable_after": 0,
                                      "n_injected": 10}
    assert audits["calibration"]["ece_after"] < audits["calibration"]["ece_before"]
    assert "skipped" in audits["shortcut"]
    audits = evaluation_audits(pred, model_dir, str(tmp_path / "prep"), None, 0.5)
    assert audits["shortcut"]["near_perfect"] == ["evaluated set"] and "skipped" in audits["manipulation"]
    metrics = {**compute_metrics(pred), "audits": audits}
    md = write_report(pred, metrics, tmp_path / "eval", "Audited").read_text(encoding="utf-8")
    for heading in ("## Audits", "### Shortcut baseline", "### Pair consistency", "### Manipulation robustness",
                    "### Calibration"):
        assert heading in md
    assert SHORTCUT_WARNING in md and "10 of 10 pairs" in md and "| 0.01% |" in md
