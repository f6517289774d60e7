"""Archive scoring on a real local Ray: every line accounted for, flagged messages explained."""

import json

import pandas as pd

from conftest import write_jsonl
from jobs.common import job_main
from pipeline.config import ScoreConfig


def test_scores_flags_explains_and_accounts(tiny_mistral, ray_session, tmp_path):
    from jobs.score import run

    lines = [{"id": f"m{i}", "text": f"Advisor: I guarantee a {i}% return, no risk at all."} for i in range(8)]
    lines += ["{not json", {"id": "empty", "text": "  "}, {"id": "long", "text": "x" * 500}]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl", lines)
    out = tmp_path / "out"
    argv = [f"paths=[{archive.parent}]", f"output_dir={out}", f"engine.model={tiny_mistral}", "max_chars=200",
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
