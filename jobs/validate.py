"""Check job configs without a cluster: every problem in every file, in the user's key names.

    python -m jobs.validate --config jobs/configs/prepare_sample.yaml [overrides ...]
    python -m jobs.validate jobs/configs/*.yaml

The job is named by --job, or inferred from the file name's prefix (prepare_*, train_*, ...).
Exits 0 when all are valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config as C

JOBS = {"prepare": C.PrepareConfig, "train": C.TrainConfig, "evaluate": C.EvaluateConfig, "score": C.ScoreConfig}


def config_class(path: str, job: str | None) -> type:
    """The config model for `job`, or for the file name's prefix (``train_mistral.yaml`` -> train)."""
    name = job or Path(path).name.split("_", 1)[0]
    if name not in JOBS:
        raise C.ConfigError(f"{path}: cannot tell which job it configures; pass --job one of {sorted(JOBS)}")
    return JOBS[name]


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
            cfg = C.load_config(config_class(path, args.job), path, overrides)
            print(f"ok      {path} ({type(cfg).__name__})")
        except C.ConfigError as e:
            failed += 1
            print(f"invalid {path}: {e}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
