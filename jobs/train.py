"""ray job submit --working-dir . --runtime-env ray_cluster/runtime_env.yaml -- python -m jobs.train --config jobs/configs/train_mistral7b_qlora_1gpu.yaml

Fine-tune a model on prepared data with Ray Train: LoRA, QLoRA, DeepSpeed ZeRO-2/3 LoRA or full.
Locally (starts or joins a local Ray): python -m jobs.train --config jobs/configs/train_embedded_cpu.yaml

Reads <data.prepared_dir> (from jobs/prepare.py), checkpoints to <ray.storage_path>/<run_name>
(submitting the same run name again resumes from its latest checkpoint) and writes the adapter,
tokenizer, metrics.json, loss_curve.png and training_config.json to <output_dir>. Exits 2 on a bad
config, 1 on a failed run.
"""

from __future__ import annotations

import sys

from jobs.common import job_main
from pipeline.train.config import TrainConfig


def run(cfg: TrainConfig) -> None:
    from ray.train import TrainingFailedError

    from pipeline.runtime import init_ray
    from pipeline.train.run import run_training

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    try:
        result = run_training(cfg)
    except TrainingFailedError as e:
        raise RuntimeError(f"training failed after {cfg.ray.max_failures} restart(s) allowed by "
                           f"ray.max_failures: {e}") from e
    m = result.metrics
    resumed = f" (resumed from step {m['resumed_from_step']})" if m["resumed_from_step"] is not None else ""
    print(f"trained to step {m['global_step']}{resumed} "
          f"(effective batch {m['effective_batch']}): eval_loss {m['eval_loss_first']} -> {m['eval_loss_last']} "
          f"(best {m['best_eval_loss']} at step {m['best_step']}), {m['tokens_per_second']} tokens/s")
    print(f"artifact: {result.output_dir}")
    print(f"checkpoints and TensorBoard logs: {result.run_dir}")


if __name__ == "__main__":
    sys.exit(job_main(TrainConfig, run, __doc__))
