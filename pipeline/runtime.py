"""Starting or joining Ray, and the provenance written next to every artifact."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pipeline

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster (`address`, or RAY_ADDRESS as set by `ray job submit`), else start a local one."""
    import ray

    if ray.is_initialized():
        return
    # The working dir travels with `ray job submit`; locally the package is importable already.
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = True


def bound_data_memory(object_store_bytes: int) -> None:
    """Cap what Ray Data keeps in flight in the object store, so memory does not grow with input size."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
        object_store_memory=object_store_bytes)


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
