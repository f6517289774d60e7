"""ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.prepare --config jobs/configs/prepare_sample.yaml

Prepare raw JSON Lines into formatted, leakage-free Parquet splits with Ray Data. Locally:
    python -m jobs.prepare --config jobs/configs/prepare_sample.yaml data.max_seq_len=4096   # local Ray

Writes <data.output_dir>/split={train,validation,test,rejected}/*.parquet, _rejects.jsonl and
_manifest.json (replacing the folder only when the run succeeds), and prints a summary. Exits 2 on a
bad config, 1 on a failed run.
"""

from __future__ import annotations

import sys

from jobs.common import job_main
from pipeline.prepare.config import PrepareConfig


def run(cfg: PrepareConfig) -> None:
    from pipeline.artifacts import MANIFEST_NAME
    from pipeline.prepare.manifest import format_summary
    from pipeline.prepare.run import run_prepare
    from pipeline.runtime import bound_data_memory, init_ray

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    if cfg.ray.data_memory_gb:
        bound_data_memory(int(cfg.ray.data_memory_gb * 2**30))
    result = run_prepare(cfg)
    print(format_summary(result.manifest))
    print(f"manifest: {result.output_dir}/{MANIFEST_NAME}")


if __name__ == "__main__":
    sys.exit(job_main(PrepareConfig, run, __doc__))
