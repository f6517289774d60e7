"""What every stage writes next to its outputs: JSON files (local or cloud), the provenance of the code, and the
names of the files one stage leaves for the next (the prepared data's manifest)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pipeline

# Beside the split=* partitions: the leading '_' makes pyarrow, Ray Data and Spark skip it, so the
# prepared folder reads directly as one Parquet dataset. Train and evaluate read it back.
MANIFEST_NAME = "_manifest.json"


def open_output(path: str):
    """A binary output stream to a local path or a cloud URI (pyarrow filesystems)."""
    import pyarrow.fs

    fs, p = pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
    return fs.open_output_stream(p)


def write_json(path: str, payload: dict) -> None:
    """Write JSON to a local path or a cloud URI."""
    with open_output(path) as f:
        f.write(json.dumps(payload, indent=2, default=str).encode())


def provenance() -> dict:
    """Package version and git commit (when the code runs from a checkout)."""
    info = {"complyray_version": pipeline.__version__}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info
