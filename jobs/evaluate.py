"""ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.evaluate --config jobs/configs/evaluate_mistral7b_gpu.yaml

Evaluate a detector by generation over a prepared split, as a Ray Data batch job. Locally:
    python -m jobs.evaluate --config jobs/configs/evaluate_demo.yaml model.name_or_path=runs/adapters/smollm2-sample-lora \
        compare_to=[runs/eval/base] data.limit=20

Writes <output_dir>/predictions.parquet, metrics.json, report.md / report.html (+ PNGs) and, with
compare_to, comparison/. Exits 2 on a bad config, 1 on a failed run.
"""

from __future__ import annotations

import sys

from jobs.common import job_main
from pipeline.evaluate.config import EvaluateConfig


def run(cfg: EvaluateConfig) -> None:
    from pathlib import Path

    from pipeline.evaluate.run import comparison_runs, run_evaluation
    from pipeline.evaluate.report import comparison_text
    from pipeline.runtime import init_ray

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    metrics = run_evaluation(cfg)
    v = metrics["verdict"]
    print(f"{metrics['run']['examples']} examples  verdict F1 {v['f1']:.3f}  accuracy {v['accuracy']:.3f}  "
          f"JSON valid {_pct(metrics['json_validity']['rate'])}  grounded {_pct(metrics['grounding']['rate'])}")
    if cfg.compare_to:
        print(comparison_text(comparison_runs(cfg, metrics)))
    print(f"report: {Path(cfg.output_dir) / 'report.html'}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


if __name__ == "__main__":
    sys.exit(job_main(EvaluateConfig, run, __doc__))
