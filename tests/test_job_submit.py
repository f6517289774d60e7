"""`ray job submit` of the preparation job against the session's real `ray start --head`."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import RAY_CMD, item, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_prepare_through_ray_job_submit(ray_head, tiny_mistral, tmp_path):
    data = write_jsonl(tmp_path / "in" / "sec.jsonl", [item(i, topic=f"T{i % 3}") for i in range(30)] + ["{oops"])
    out = tmp_path / "out"
    cmd = [*RAY_CMD, "job", "submit", "--address", ray_head[1], "--working-dir", ".",
           "--runtime-env", "ray_cluster/runtime_env.yaml", "--",
           "python", "-m", "jobs.prepare", "--config", "jobs/configs/prepare_sample.yaml",
           f"data.paths=[{data}]", f"data.output_dir={out}", f"model.name_or_path={tiny_mistral}"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "succeeded" in run.stdout + run.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"]["accepted"] == 60 and manifest["rejects_by_reason"] == {"invalid_json": 1}
    assert all((out / f"split={s}").is_dir() for s in ("train", "validation", "test"))
    assert "read 31 lines" in run.stdout


def test_submitted_job_with_bad_config_fails_with_the_key(ray_head):
    cmd = [*RAY_CMD, "job", "submit", "--address", ray_head[1], "--working-dir", ".",
           "--runtime-env", "ray_cluster/runtime_env.yaml", "--", "python", "-m", "jobs.prepare", "data.seeed=1"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert run.returncode != 0
    assert "data.seeed: unknown key" in run.stdout + run.stderr
