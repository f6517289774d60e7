"""The evaluation job end to end on a real local Ray with a tiny random Mistral."""

import json

import pandas as pd
import pytest

from conftest import item, write_jsonl
from jobs.common import job_main
from pipeline.config import load_config
from pipeline.evaluate.config import EvaluateConfig
from pipeline.prepare.config import PrepareConfig


@pytest.fixture(scope="module")
def prepared(tiny_mistral, ray_session, tmp_path_factory):
    from pipeline.prepare.run import run_prepare

    root = tmp_path_factory.mktemp("evaldata")
    data = write_jsonl(root / "in.jsonl", [item(i, topic=f"Topic {i % 3}", fmt=["chat", "email"][i % 2])
                                           for i in range(30)])
    cfg = load_config(PrepareConfig, None, [f"data.paths=[{data}]", f"data.output_dir={root / 'prep'}",
                                            f"model.name_or_path={tiny_mistral}"])
    manifest = run_prepare(cfg).manifest
    from pipeline.prepare.manifest import format_summary

    assert manifest["shortcut_audit"]["warning"] and "WARNING: your labels" in format_summary(manifest)
    return root / "prep", manifest


def evaluate(tiny_mistral, prepared, out, *extra):
    from jobs.evaluate import run

    argv = [f"model.name_or_path={tiny_mistral}", "engine.max_new_tokens=16", "engine.batch_size=4",
            f"data.prepared_dir={prepared}", f"output_dir={out}", "actors=1", "cpus_per_actor=2", *extra]
    assert job_main(EvaluateConfig, run, None, argv) == 0


@pytest.mark.slow
def test_predictions_and_metrics_for_every_test_example(tiny_mistral, prepared, tmp_path, capsys):
    prep_dir, manifest = prepared
    evaluate(tiny_mistral, prep_dir, tmp_path / "a")
    pred = pd.read_parquet(tmp_path / "a" / "predictions.parquet")
    n_test = manifest["splits"]["test"]["records"]
    assert len(pred) == n_test and pred["id"].is_unique
    for col in ("gold_verdict", "pred_verdict", "raw_output", "parse_status", "p_violation", "grounded_rate",
                "latency_s", "new_tokens", "prompt_tokens"):
        assert col in pred.columns
    assert pred["p_violation"].between(0, 1).all()
    # Under the verdict grammar 16 new tokens never hold a whole verdict: each answer is cut, and says so.
    assert set(pred["parse_status"]) == {"truncated"} and not pred["finished"].any()
    assert pred["raw_output"].str.startswith('{"final_verdict": "').all()
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["json_validity"]["truncated"] == n_test and metrics["json_validity"]["rate_finished"] is None
    assert metrics["n"] == n_test and metrics["run"]["data_manifest_hash"] == manifest["content_hash"]
    assert (tmp_path / "a" / "report.html").stat().st_size > 10_000
    assert "verdict F1" in capsys.readouterr().out
    # the audits (issue 14): the conftest pairs differ in one word, so the bag of words sees through them
    audits = metrics["audits"]
    n_test_violations = manifest["splits"]["test"]["verdict"]["NON_COMPLIANT"]
    assert audits["manipulation"]["n_injected"] == n_test_violations
    assert len(pd.read_parquet(tmp_path / "a" / "manipulated.parquet")) == n_test_violations
    pairs = audits["pair_consistency"]  # a random model's unreadable answers leave pairs incomplete
    assert pairs["n_pairs"] + pairs["n_incomplete"] == manifest["splits"]["test"]["pairs"]
    assert audits["shortcut"]["near_perfect"] == ["test"] and audits["calibration"]["n_scored"] == n_test
    assert "Manipulation robustness" in (tmp_path / "a" / "report.md").read_text()


@pytest.mark.slow
def test_probability_only_run_and_comparison(tiny_mistral, prepared, tmp_path, capsys):
    prep_dir, _ = prepared
    evaluate(tiny_mistral, prep_dir, tmp_path / "base", "generate=false", "data.limit=4")
    evaluate(tiny_mistral, prep_dir, tmp_path / "tuned", "data.limit=4", f"compare_to=[{tmp_path / 'base'}]")
    assert len(pd.read_parquet(tmp_path / "base" / "predictions.parquet")) == 4
    comparison = list((tmp_path / "tuned" / "comparison").glob("comparison.*"))
    assert {p.suffix for p in comparison} >= {".md", ".html", ".png"}
    assert "base" in capsys.readouterr().out


def test_missing_split_is_a_clear_error(tiny_mistral, tmp_path, ray_session):
    from jobs.evaluate import run

    code = job_main(EvaluateConfig, run, None, [f"model.name_or_path={tiny_mistral}", f"data.prepared_dir={tmp_path}"])
    assert code == 1


def test_actors_taking_every_cpu_are_refused(tiny_mistral, prepared, tmp_path):
    from jobs.evaluate import run

    code = job_main(EvaluateConfig, run, None, [f"model.name_or_path={tiny_mistral}", f"data.prepared_dir={prepared[0]}",
                                                "actors=2", "cpus_per_actor=1.5"])
    assert code == 1


def test_rerun_replaces_the_output_folder_privately(tiny_mistral, prepared, tmp_path):
    import os
    import stat

    out = tmp_path / "e"
    out.mkdir()
    (out / "predictions_from_another_model.parquet").write_text("stale")
    evaluate(tiny_mistral, prepared[0], out, "generate=false", "data.limit=4")
    # The stale file is gone; what is left is this run's (predictions + the manipulation audit's copies).
    assert sorted(p.name for p in out.glob("*.parquet")) == ["manipulated.parquet", "predictions.parquet"]
    assert len(pd.read_parquet(out / "predictions.parquet")) == 4
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in out.rglob("*") if p.is_file()} == {0o600}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700 and os.listdir(tmp_path) == ["e"]
