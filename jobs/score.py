"""ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.score --config jobs/configs/score_archive.yaml paths=[s3://bucket/archive/2026-11/]

Score an archive of communications: P(violation) for every message, full verdicts for flagged ones. Locally:
    python -m jobs.score --config jobs/configs/score_archive.yaml model.name_or_path=runs/adapters/smollm2-sample-lora
On a GPU cluster (one engine actor per GPU):
    ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.score --config jobs/configs/score_archive_gpu.yaml

Streams the archive and commits it unit by unit: run the same command again after a failure and it resumes.
Writes <output_dir>/scores/*.parquet, alerts.html + alerts.csv (the reviewers' queue), rejects.jsonl and
summary.json. Exits 2 on a bad config, 1 on failure (a refused rerun after a config change included).
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
    print(f"read {s['read']:,}: scored {s['scored']:,} ({s['chunked']:,} scored in windows), spared by the cascade "
          f"{s['spared']:,}, duplicates {s['duplicates']:,}, flagged {s['flagged']:,} (p >= {s['threshold']}), "
          f"rejected {s['rejected']:,} {s['rejects_by_reason']}  ({s['seconds']}s; units: {s['units']['total']} "
          f"planned, {s['units']['skipped_as_committed']} already committed)")
    print(f"scores: {cfg.output_dir}/scores/   alert queue: {cfg.output_dir}/alerts.html (+ alerts.csv)")


if __name__ == "__main__":
    sys.exit(job_main(ScoreConfig, run, __doc__))
