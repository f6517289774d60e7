"""python -m jobs.validate jobs/configs/*.yaml

Check job configs without a cluster: every problem in every file, in the user's key names.

    python -m jobs.validate --config jobs/configs/prepare_sample.yaml [overrides ...]

The job is named by --job, or inferred from the file name's prefix (prepare_*, train_*, ...).
Data and model paths that do not exist on this machine are reported as warnings (they may exist only
on the cluster, or be written by an earlier job); cloud URIs and hub ids are not checked from here.
Exits 0 when all are valid (warnings included), 2 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from pathlib import Path

from pipeline.config import ConfigError, load_config
from pipeline.evaluate.config import EvaluateConfig
from pipeline.prepare.config import PrepareConfig
from pipeline.score.config import ScoreConfig
from pipeline.train.config import TrainConfig

JOBS = {"prepare": PrepareConfig, "train": TrainConfig, "evaluate": EvaluateConfig, "score": ScoreConfig}


def config_class(path: str, job: str | None) -> type:
    """The config model for `job`, or for the file name's prefix (``train_mistral.yaml`` -> train)."""
    name = job or Path(path).name.split("_", 1)[0]
    if name not in JOBS:
        raise ConfigError(f"{path}: cannot tell which job it configures; pass --job one of {sorted(JOBS)}")
    return JOBS[name]


def _paths_of(cfg) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(key, value) of the config's data paths and of its model paths."""
    data, models = [], []
    if isinstance(cfg, PrepareConfig):
        data += [("data.paths", p) for p in cfg.data.paths]
        models.append(("model.name_or_path", cfg.model.name_or_path))
    elif isinstance(cfg, TrainConfig):
        data.append(("data.prepared_dir", cfg.data.prepared_dir))
        models.append(("model.name_or_path", cfg.model.name_or_path))
    elif isinstance(cfg, EvaluateConfig):
        data += [("data.paths", p) for p in cfg.data.paths] if cfg.data.paths else [
            ("data.prepared_dir", cfg.data.prepared_dir or "")]
        data += [("compare_to", p) for p in cfg.compare_to]
    elif isinstance(cfg, ScoreConfig):
        data += [("paths", p) for p in cfg.paths]
    if isinstance(cfg, (EvaluateConfig, ScoreConfig)):
        models.append(("model.name_or_path", cfg.model.name_or_path))
        models += [("model.adapter", cfg.model.adapter)] if cfg.model.adapter else []
    return data, models


def _exists(path: str) -> bool:
    path = os.path.expanduser(path)
    return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def path_warnings(cfg) -> tuple[list[str], int]:
    """Warnings for data and model paths that do not exist here, and the number of remote ones not checked.

    A model that is not a local folder and looks like a hub id (``org/name``) is fetched at run time,
    so only model values that look like local paths are checked.
    """
    data, models = _paths_of(cfg)
    warnings, remote = [], 0
    for key, value in data:
        if "://" in value:
            remote += 1
        elif not _exists(value):
            warnings.append(f"{key}={value!r} does not exist on this machine (fine only if the cluster has it "
                            "or an earlier job writes it)")
    for key, value in models:
        if value == "embedded" or "://" in value or _exists(value):
            remote += "://" in value
            continue
        hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", value) and not value.startswith(".") \
            and not os.path.isdir(value.split("/")[0])
        if hub_like:
            remote += 1
        else:
            warnings.append(f"{key}={value!r} is not a folder on this machine (fine only if the cluster has it "
                            "or an earlier job writes it)")
    return warnings, remote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", default=[], help="config file (repeatable)")
    parser.add_argument("--job", choices=sorted(JOBS), help="job the config belongs to (default: from file name)")
    parser.add_argument("rest", nargs="*", help="more config files (*.yaml) and dotted overrides (key=value)")
    args = parser.parse_args(argv)
    files = args.config + [r for r in args.rest if "=" not in r]
    overrides = [r for r in args.rest if "=" in r]
    if not files:
        parser.error("give at least one config file")
    failed = 0
    for path in files:
        try:
            cfg = load_config(config_class(path, args.job), path, overrides)
            warnings, remote = path_warnings(cfg)
            unchecked = f"; {remote} remote or hub path(s) not checked" if remote else ""
            print(f"{'warning' if warnings else 'ok':<7} {path} ({type(cfg).__name__}{unchecked})")
            for w in warnings:
                print(f"  warning: {w}")
        except ConfigError as e:
            failed += 1
            print(f"invalid {path}: {e}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
