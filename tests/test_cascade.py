"""The bag-of-words first stage (pipeline/cascade.py): its recall threshold, what it costs and spares on a
crafted set, its files, and archive scoring that skips the LLM for what it clears (real local Ray, tiny
random Mistral)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import write_jsonl
from jobs.common import job_main
from pipeline.cascade import (Cascade, cascade_audit, fit_cascade, load_cascade, recall_threshold,
                              save_cascade)
from pipeline.score.config import ScoreConfig

VIOLATING = ["I guarantee this fund doubles, no risk at all.", "Text me on my personal cell, not the firm line.",
             "Wire it to my own account first, it's faster.", "It's a sure thing, you can't lose money here."]
CLEAN = ["Your statement is attached; call me with questions.", "The meeting moved to Tuesday at ten.",
         "Past performance does not predict future results.", "Please use the firm email for this request."]


def _prepared(root, copies=6):
    for split, n in (("train", copies), ("validation", 2)):
        rows = [{"scenario": t + f" ({split} {i})", "final_verdict": v}
                for i in range(n) for t, v in [*((t, "NON_COMPLIANT") for t in VIOLATING),
                                                *((t, "COMPLIANT") for t in CLEAN)]]
        (root / f"split={split}").mkdir(parents=True)
        pd.DataFrame(rows).to_parquet(root / f"split={split}" / "part-0.parquet")
    return root


def test_recall_threshold_keeps_the_target_share_of_violations():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    labels = np.array([1, 0, 1, 1, 0, 1, 0, 1, 0, 0], bool)  # violations at 0.9 0.7 0.6 0.4 0.2
    assert recall_threshold(scores, labels, 1.0) == 0.2
    assert recall_threshold(scores, labels, 0.8) == 0.4  # 4 of 5 kept
    assert recall_threshold(scores, labels, 0.81) == 0.2  # 4.05 of 5 rounds up to all 5
    for target in (0.2, 0.5, 0.9, 1.0):
        t = recall_threshold(scores, labels, target)
        assert (scores[labels] >= t).mean() >= target
    with pytest.raises(ValueError, match="violation"):
        recall_threshold(scores, np.zeros(10, bool), 0.9)


def test_cascade_audit_counts_spared_messages_and_the_recall_it_costs():
    cascade = Cascade(threshold=0.5, target_recall=0.9, validation_recall=0.95, validation_spared=0.4, n_train=10,
                      n_validation=10, fitted_on="x")
    first = np.array([0.9, 0.2, 0.7, 0.1, 0.8, 0.3])
    p_llm = np.array([0.9, 0.9, 0.2, 0.8, np.nan, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    out = cascade_audit(first, p_llm, labels, cascade, threshold=0.5)
    assert out["spared"] == pytest.approx(3 / 6)  # 0.2, 0.1, 0.3 are below the first stage's threshold
    assert out["first_stage_recall"] == pytest.approx(2 / 3)
    assert out["llm_recall"] == pytest.approx(2 / 3)  # rows 0 and 1
    assert out["cascade_recall"] == pytest.approx(1 / 3)  # row 1 was cleared by the first stage
    assert out["recall_cost"] == pytest.approx(1 / 3)


def test_fit_save_load_round_trip(tmp_path):
    model, cascade = fit_cascade(str(_prepared(tmp_path / "prepared")), target_recall=1.0)
    assert cascade.validation_recall == 1.0 and cascade.n_train == 48 and cascade.n_validation == 16
    save_cascade(model, cascade, tmp_path / "artifact")
    loaded_model, loaded = load_cascade(tmp_path / "artifact")
    assert loaded == cascade
    texts = VIOLATING + CLEAN
    np.testing.assert_allclose(loaded_model.predict_proba(texts)[:, 1], model.predict_proba(texts)[:, 1], atol=1e-12)
    assert load_cascade(tmp_path / "nothing") is None
    (tmp_path / "artifact" / "cascade_bow.json").unlink()
    with pytest.raises(ValueError, match="cascade_bow.json is missing"):
        load_cascade(tmp_path / "artifact")


def test_scoring_skips_the_llm_for_what_the_first_stage_clears(tiny_mistral, ray_session, tmp_path):
    from jobs.score import run

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_mistral, model_dir)
    bow, cascade = fit_cascade(str(_prepared(tmp_path / "prepared")), target_recall=1.0)
    save_cascade(bow, cascade, model_dir)
    texts = VIOLATING + CLEAN
    write_jsonl(tmp_path / "archive" / "a.jsonl", [{"id": f"m{i}", "text": t} for i, t in enumerate(texts)])
    first = bow.predict_proba(texts)[:, 1]
    cleared = first < cascade.threshold
    assert 0 < cleared.sum() < len(texts)  # the crafted stage clears some messages, not all
    argv = [f"paths=[{tmp_path / 'archive'}]", f"output_dir={tmp_path / 'out'}", f"model.name_or_path={model_dir}",
            "engine.max_new_tokens=16", "engine.batch_size=8", "cpus_per_actor=1", "explain=false", "threshold=0.01"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    scores = pd.read_parquet(tmp_path / "out" / "scores").set_index("id").loc[[f"m{i}" for i in range(len(texts))]]
    assert summary["spared"] == int(cleared.sum()) == int(scores["spared"].sum())
    np.testing.assert_allclose(scores["first_stage"], first, atol=1e-9)
    spared = scores[scores["spared"]]
    assert spared["p_violation"].isna().all() and not spared["flagged"].any()  # never reached the LLM
    assert scores.loc[~scores["spared"], "p_violation"].notna().all() and scores.loc[~scores["spared"], "flagged"].all()
    assert summary["read"] == summary["scored"] + summary["duplicates"] + summary["rejected"]
    # cascade=false: every message goes to the LLM (the run's fingerprint changes: restart)
    assert job_main(ScoreConfig, run, None, argv + ["cascade=false", "restart=true"]) == 0
    again = pd.read_parquet(tmp_path / "out" / "scores")
    assert not again["spared"].any() and again["p_violation"].notna().all()


def test_the_cascade_reads_the_whole_text_before_any_window(tiny_mistral, ray_session, tmp_path):
    """Long messages: the first stage judges the whole text; one it clears is spared (no windows, no LLM), one it
    passes is scored by the LLM in windows (chunked) with its riskiest window's probability."""
    from jobs.score import run
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_mistral, model_dir)
    bow, cascade = fit_cascade(str(_prepared(tmp_path / "prepared")), target_recall=1.0)
    save_cascade(bow, cascade, model_dir)
    long_violating, long_clean = " ".join([VIOLATING[0]] * 12), " ".join([CLEAN[0]] * 12)
    first = bow.predict_proba([long_violating, long_clean])[:, 1]
    assert first[0] >= cascade.threshold > first[1]  # the stage passes one and clears the other
    detector = Detector(DetectorModelConfig(name_or_path=str(model_dir)), EngineConfig(device="cpu"))
    overhead = len(detector.encode_prompts([""])[0])
    assert len(detector.encode_prompts([long_clean])[0]) > overhead + 64  # both need windows of this size
    write_jsonl(tmp_path / "archive" / "a.jsonl", [{"id": "violating", "text": long_violating},
                                                    {"id": "clean", "text": long_clean}])
    argv = [f"paths=[{tmp_path / 'archive'}]", f"output_dir={tmp_path / 'out'}", f"model.name_or_path={model_dir}",
            "engine.max_new_tokens=16", "cpus_per_actor=1", "explain=false", "threshold=0.01",
            f"chunking.window_tokens={overhead + 64}", "chunking.overlap_tokens=8"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["spared"], summary["chunked"]) == (2, 2, 1, 1)
    scores = pd.read_parquet(tmp_path / "out" / "scores").set_index("id")
    clean, violating = scores.loc["clean"], scores.loc["violating"]
    assert clean["spared"] and pd.isna(clean["windows"]) and pd.isna(clean["p_violation"]) and not clean["flagged"]
    assert not violating["spared"] and violating["windows"] >= 2 and violating["flagged"]
    assert 0 <= violating["risk_start"] < violating["risk_end"] <= len(long_violating)
