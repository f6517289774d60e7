"""Config system: precedence, every problem at once, shipped configs valid, the validate CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.validate import JOBS, config_class
from pipeline.config import ConfigError, load_config, parse_overrides
from pipeline.prepare.config import PrepareConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "jobs" / "configs").glob("*.yaml"))


def test_precedence_defaults_file_overrides(tmp_path):
    f = tmp_path / "prepare_x.yaml"
    f.write_text("data:\n  max_seq_len: 1024\n  seed: 3\n")
    cfg = load_config(PrepareConfig, f, ["data.seed=9", "data.paths=[a.jsonl, 'b/*.jsonl.gz']"])
    assert (cfg.data.max_seq_len, cfg.data.seed, cfg.data.paths) == (1024, 9, ["a.jsonl", "b/*.jsonl.gz"])
    assert cfg.data.overlong == "reject"  # default kept


def test_every_problem_reported_at_once_in_user_key_names():
    with pytest.raises(ConfigError) as e:
        load_config(PrepareConfig, None, ["data.max_seq_len=12", "data.colour=red", "data.overlong=drop",
                                          "modle.name_or_path=x"])
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for key in ("data.max_seq_len=12", "data.colour: unknown key", "data.overlong='drop'", "modle: unknown key"):
        assert key in msg


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides([bad])


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(PrepareConfig, tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(PrepareConfig, tmp_path / "list.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate_and_name_their_command(path):
    load_config(config_class(str(path), None), path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("#") and "python -m jobs." in path.read_text().split("\n\n")[0]


def test_every_job_has_a_shipped_config():
    assert {p.name.split("_", 1)[0] for p in SHIPPED} >= set(JOBS)


def test_validate_cli_exit_codes(tmp_path):
    bad = tmp_path / "prepare_bad.yaml"
    bad.write_text("data:\n  max_seq_len: 1\n  typo: true\n")
    good = ROOT / "jobs" / "configs" / "prepare_sample.yaml"
    run = lambda *a: subprocess.run([sys.executable, "-m", "jobs.validate", *a], capture_output=True, text=True,
                                    cwd=ROOT)
    assert run("--config", str(good)).returncode == 0
    r = run(str(good), str(bad))
    assert r.returncode == 2 and "data.typo: unknown key" in r.stderr and "data.max_seq_len=1" in r.stderr


def test_cross_field_problems_reported_with_field_problems():
    from pipeline.evaluate.config import EvaluateConfig
    from pipeline.train.config import TrainConfig

    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, ["train.learning_rate=-1", "lora.r=0", "quantization.load_in_4bit=true",
                                        "train.save_steps=30", "train.eval_steps=20"])
    msg = str(e.value)
    assert "4 problem(s)" in msg and "train.learning_rate=-1" in msg and "lora.r=0" in msg
    assert "bitsandbytes 4-bit needs CUDA" in msg and "multiple of train.eval_steps=20" in msg
    with pytest.raises(ConfigError) as e:
        load_config(EvaluateConfig, None, ["threshold=2", "generate=false", "probability=false"])
    assert "2 problem(s)" in str(e.value) and "leave nothing to evaluate" in str(e.value)


def test_validate_cli_warns_for_paths_that_do_not_exist(tmp_path):
    cfg = tmp_path / "score_x.yaml"
    cfg.write_text(f"paths: [{tmp_path / 'no-archive'}, s3://bucket/archive/]\n"
                   f"model:\n  name_or_path: {tmp_path / 'no-model'}\n")
    r = subprocess.run([sys.executable, "-m", "jobs.validate", str(cfg)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("warning ")
    assert "no-archive' does not exist" in r.stdout and "no-model' is not a folder" in r.stdout
    assert "1 remote or hub path(s) not checked" in r.stdout
    ok = subprocess.run([sys.executable, "-m", "jobs.validate", str(ROOT / "jobs/configs/prepare_sample.yaml")],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout.startswith("ok ")


@pytest.mark.parametrize("old,new", [("engine.model", "model.name_or_path"), ("engine.adapter", "model.adapter")])
def test_renamed_model_keys_are_refused_with_the_new_name(old, new):
    from pipeline.evaluate.config import EvaluateConfig
    from pipeline.score.config import ScoreConfig
    from serve.config import parse_app_config

    for cls, extra in ((EvaluateConfig, []), (ScoreConfig, ["paths=[a.jsonl]"])):
        with pytest.raises(ConfigError) as e:
            load_config(cls, None, [f"{old}=runs/adapter", *extra])
        assert f"{old}: was renamed; use {new}" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_app_config({"engine": {old.split(".")[1]: "runs/adapter"}})
    assert f"{old}: was renamed; use {new}" in str(e.value)
    cfg = load_config(EvaluateConfig, None, [f"{new}=runs/adapter"])
    assert cfg.model.name_or_path == "runs/adapter" if new == "model.name_or_path" else cfg.model.adapter == "runs/adapter"
