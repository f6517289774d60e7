"""Archive scoring on a real local Ray: every line accounted for, flagged messages explained."""

import json

import pandas as pd

from conftest import write_jsonl
from jobs.common import job_main
from pipeline.score.config import ScoreConfig


def test_scores_flags_explains_and_accounts(tiny_mistral, ray_session, tmp_path):
    from jobs.score import run

    lines = [{"id": f"m{i}", "text": f"Advisor: I guarantee a {i}% return, no risk at all."} for i in range(8)]
    lines += ["{not json", {"id": "empty", "text": "  "}, {"id": "long", "text": "x" * 500}]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl", lines)
    out = tmp_path / "out"
    argv = [f"paths=[{archive.parent}]", f"output_dir={out}", f"model.name_or_path={tiny_mistral}", "max_bytes=200",
            "engine.max_new_tokens=16", "engine.batch_size=4", "threshold=0.01", "cpus_per_actor=1"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["rejected"]) == (11, 8, 3)
    assert summary["rejects_by_reason"] == {"invalid_json": 1, "missing_text": 1, "too_long": 1}
    scores = pd.read_parquet(out / "scores")
    assert sorted(scores["id"]) == [f"m{i}" for i in range(8)]
    assert scores["p_violation"].between(0, 1).all()
    flagged = scores[scores["flagged"]]
    assert summary["flagged"] == len(flagged) and flagged["parse_status"].notna().all()
    assert len(open(out / "rejects.jsonl").readlines()) == 3


def test_message_over_the_model_context_is_scored_in_windows(tiny_mistral, ray_session, tmp_path):
    """Under max_bytes but over the tiny model's 4,096 positions: scored in windows (never cut, never fed whole)."""
    from jobs.score import run
    from transformers import AutoConfig, AutoTokenizer

    positions = AutoConfig.from_pretrained(tiny_mistral).max_position_embeddings
    long_text = "Advisor: I guarantee this fund never loses money, trust me. " * 600
    tokens = len(AutoTokenizer.from_pretrained(tiny_mistral)(long_text)["input_ids"])
    assert tokens > positions and len(long_text) < 50_000  # the case of the issue: under the cap, over the model
    lines = [{"id": f"m{i}", "text": f"Advisor: I guarantee a {i}% return."} for i in range(4)]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl", lines + [{"id": "huge", "text": long_text}])
    out = tmp_path / "out"
    argv = [f"paths=[{archive.parent}]", f"output_dir={out}", f"model.name_or_path={tiny_mistral}",
            "engine.max_new_tokens=16", "engine.batch_size=4", "threshold=0.01", "cpus_per_actor=1"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["rejected"], summary["chunked"]) == (5, 5, 0, 1)
    assert summary["rejects_by_reason"] == {}
    scores = pd.read_parquet(out / "scores").set_index("id")
    assert scores["windows"].drop("huge").to_dict() == {"m0": 1, "m1": 1, "m2": 1, "m3": 1}
    assert scores.loc["huge", "windows"] >= 2
    assert scores["p_violation"].between(0, 1).all()
    huge = scores.loc["huge"]
    assert huge["flagged"] and huge["parse_status"] is not None  # explained too: generation fit as well
    assert 0 <= huge["risk_start"] < huge["risk_end"] <= len(long_text)


def test_archive_without_rejects_summarises_and_exits_0(tiny_mistral, ray_session, tmp_path, capsys):
    """The shipped example's case: every line valid, so the rejects selection is empty (was a KeyError)."""
    from jobs.score import run

    lines = [{"id": f"ok{i}", "text": f"Advisor: Returns on fund {i} are not guaranteed."} for i in range(3)]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl", lines)
    out = tmp_path / "out"
    argv = [f"paths=[{archive.parent}]", f"output_dir={out}", f"model.name_or_path={tiny_mistral}",
            "engine.max_new_tokens=16", "explain=false", "cpus_per_actor=1"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["rejected"], summary["rejects_by_reason"]) == (3, 3, 0, {})
    assert (out / "rejects.jsonl").read_text() == ""
    assert "read 3: scored 3 (0 scored in windows)" in capsys.readouterr().out

def test_rerun_after_an_interrupted_run_has_one_row_per_id(tiny_mistral, ray_session, tmp_path):
    """Issue 12 item 4c: a rerun into the same folder replaces it (it used to append: 50 rows for 40 ids);
    a failed run leaves the previous output; the output is private."""
    import os
    import stat

    from jobs.score import run

    # One bad line, so this test does not hinge on the summary of a run without rejects (item 4b).
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl",
                          [{"id": f"m{i}", "text": f"Advisor: a {i}% return, no risk."} for i in range(6)] + ["{bad"])
    out = tmp_path / "out"
    # What an interrupted run left behind: part of the scores.
    (out / "scores").mkdir(parents=True)
    pd.DataFrame({"id": ["m0", "m1"], "p_violation": [0.5, 0.5], "flagged": [True, True]}).to_parquet(
        out / "scores" / "partial.parquet")
    argv = [f"paths=[{archive}]", f"output_dir={out}", f"model.name_or_path={tiny_mistral}", "explain=false",
            "engine.batch_size=4", "cpus_per_actor=1"]
    for _ in range(2):
        assert job_main(ScoreConfig, run, None, argv) == 0
        scores = pd.read_parquet(out / "scores")
        assert len(scores) == 6 and scores["id"].is_unique
        assert len(open(out / "rejects.jsonl").readlines()) == 1
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert job_main(ScoreConfig, run, None, [*argv[1:], f"paths=[{tmp_path / 'nowhere.jsonl'}]"]) == 1
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in out.rglob("*") if p.is_file()} == {0o600}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700 and sorted(os.listdir(tmp_path)) == ["archive", "out"]
