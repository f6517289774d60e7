"""ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.score --config jobs/configs/score_archive.yaml paths=[s3://bucket/archive/2026-11/]

Score an archive of communications: P(violation) for every message, full verdicts for flagged ones. Locally:
    python -m jobs.score --config jobs/configs/score_archive.yaml model.name_or_path=runs/adapters/smollm2-sample-lora

Writes <output_dir>/scores/*.parquet, rejects.jsonl, summary.json. Exits 2 on a bad config, 1 on failure.
"""

from __future__ import annotations

import sys

from jobs.common import job_main
from pipeline.score.config import ScoreConfig


def run(cfg: ScoreConfig) -> None:
    from pipeline.runtime import init_ray
    from pipeline.score.run import run_scoring

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    s = run_scoring(cfg)
    print(f"read {s['read']:,}: scored {s['scored']:,} ({s['chunked']:,} scored in windows), "
          f"flagged {s['flagged']:,} (p >= {s['threshold']}), rejected {s['rejected']:,} {s['rejects_by_reason']}  "
          f"({s['seconds']}s)")
    print(f"scores: {cfg.output_dir}/scores/")


if __name__ == "__main__":
    sys.exit(job_main(ScoreConfig, run, __doc__))
