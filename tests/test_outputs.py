"""Staged job outputs: a failure leaves the previous folder as it was, success replaces it whole."""

import os
import stat

import pytest

from pipeline.outputs import staged_output
from pipeline.train.artifacts import publish


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_success_replaces_the_folder_privately(tmp_path):
    final = tmp_path / "out"
    (final / "old").mkdir(parents=True)
    (final / "old" / "stale.parquet").write_text("old")
    with staged_output(str(final)) as stage:
        open(os.path.join(stage, "new.txt"), "w").write("new")
        assert not (final / "new.txt").exists()  # nothing visible before the swap
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert (mode(final), mode(final / "new.txt")) == (0o700, 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # neither staging nor old copy left


def test_failure_leaves_the_old_folder_exactly_and_removes_the_stage(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("keep")
    os.chmod(final / "keep.txt", 0o640)
    with pytest.raises(RuntimeError, match="boom"):
        with staged_output(str(final), access="all") as stage:
            open(os.path.join(stage, "half.txt"), "w").write("half")
            raise RuntimeError("boom")
    assert [p.name for p in final.iterdir()] == ["keep.txt"] and mode(final / "keep.txt") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_publish_replaces_an_artifact_and_keeps_it_when_the_copy_fails(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "adapter_model.safetensors").write_text("v2")
    out = tmp_path / "artifact"
    out.mkdir()
    (out / "adapter_model.safetensors").write_text("v1")
    (out / "merged").mkdir()  # an earlier run's merged model must not survive into the new artifact
    with pytest.raises(OSError):
        publish(tmp_path / "missing", str(out))
    assert (out / "adapter_model.safetensors").read_text() == "v1" and (out / "merged").is_dir()
    publish(stage, str(out))
    assert [p.name for p in out.iterdir()] == ["adapter_model.safetensors"]
    assert (out / "adapter_model.safetensors").read_text() == "v2"
