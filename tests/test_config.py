"""Config system: precedence, every problem at once, shipped configs valid, the validate CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.validate import JOBS, config_class
from pipeline.config import ConfigError, PrepareConfig, load_config, parse_overrides

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
