"""Starting or joining Ray, and sizing the work of Ray Data actors (CPU threads, CPUs left for readers)."""

from __future__ import annotations

import logging
import os

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
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                 runtime_env={"worker_process_setup_hook": "pipeline.runtime.quiet_worker_logs"})
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = True


def quiet_worker_logs() -> None:
    """Run in every worker of a local cluster. Ray Train's placement-group cleaner asks the State API (served
    by the dashboard, which a local cluster here does without) every few seconds whether the trainer is
    alive, and warns each time it gets no answer: dozens of identical lines per training run."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def bound_data_memory(object_store_bytes: int) -> None:
    """Cap what Ray Data keeps in flight in the object store, so memory does not grow with input size."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
        object_store_memory=object_store_bytes)


def check_actor_resources(actors: int, cpus_per_actor: float, keep_free: float) -> None:
    """Engine actors must leave `keep_free` CPUs for Ray Data's readers (a read task takes a whole
    CPU), or the job waits forever. Raises ValueError naming the keys."""
    import ray

    total = ray.cluster_resources().get("CPU", 0)
    if actors * cpus_per_actor > total - keep_free:
        raise ValueError(
            f"actors={actors} x cpus_per_actor={cpus_per_actor:g} needs more than the {total - keep_free:g} CPU(s) "
            f"this {total:g}-CPU cluster can give engine actors; lower actors or cpus_per_actor"
        )


def cpu_threads(cpus: float) -> None:
    """Ray sets OMP threads to the integer CPU share; use every (fractional) CPU the actor was given."""
    import math

    import torch

    torch.set_num_threads(max(1, math.ceil(cpus)))
