"""What every job entry point shares: argument parsing, config loading and exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from pipeline.config import ConfigError, describe, load_config


def parse_args(doc: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (jobs/configs/*.yaml); defaults when omitted")
    parser.add_argument("--help-config", action="store_true", help="list every config key with its default")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.max_seq_len=4096")
    return parser.parse_args(argv)


def job_main(config_cls, run: Callable, doc: str | None, argv: list[str] | None = None) -> int:
    """Parse, validate (exit 2 with every problem listed), run (exit 1 on failure, 0 on success)."""
    args = parse_args(doc, argv)
    if args.help_config:
        print("\n".join(describe(config_cls)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config_cls, args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        run(cfg)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
