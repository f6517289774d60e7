"""Supervised fine-tuning (LoRA, QLoRA or full) with TRL's SFTTrainer inside Ray Train workers.

`run_training` runs on the driver: it checks the data, pins the run's settings in storage, and starts a
`TorchTrainer` whose workers each call `train_worker` with the same `TrainPlan` (a frozen, typed
record of everything the driver resolved). A worker reads the prepared Parquet, builds the model and an
`SFTTrainer` (pipeline/train/trainer.py: `build_trainer`, also used in-process by bench/bench_train.py) and
trains; HF's distributed sampler gives every worker a disjoint shard. Every HF checkpoint is reported
to Ray Train with the latest metrics, so Ray keeps the best ones by eval_loss in
``<ray.storage_path>/<run_name>`` and, after a worker failure or when the same run name is
submitted again, hands the latest back through `ray.train.get_checkpoint()`; the trainer then
resumes from it with optimizer, scheduler, RNG, step and data position restored.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.models import load_tokenizer
from pipeline.train.config import TrainConfig
from pipeline.train.trainer import build_trainer, resolve_precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPlan:
    """What the driver resolved and every worker trains from (pickled to the workers once).

    `config` has absolute paths and the run name filled in; `data` is the prepared data's manifest facts
    (content hash, split sizes, max_seq_len, the prompt format), written as-is into training_config.json.
    """

    config: TrainConfig
    deepspeed: dict | None  # the JSON train.deepspeed names, read on the driver (workers need not see the file)
    run_dir: str  # <ray.storage_path>/<run_name>: Ray Train's checkpoints and TensorBoard logs
    local_dir: str  # node-local scratch: HF checkpoints, the staged artifact, TensorBoard before a cloud upload
    provenance: dict
    data: dict


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


@dataclass
class TrainResult:
    output_dir: str
    run_dir: str
    metrics: dict
    resumed: bool


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train on the Ray cluster this process is connected to and write the artifact folder.

    Raises FileNotFoundError / ValueError (naming the config keys) before any worker starts when the
    data, tokenizer or run settings do not fit, and ray.train.TrainingFailedError when training fails
    past ``ray.max_failures`` restarts.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipeline.artifacts import provenance
    from pipeline.train.data import check_output_dir, pin_run, preflight

    tokenizer = load_tokenizer(cfg.model.name_or_path, cfg.model.revision, cfg.model.trust_remote_code)
    manifest = preflight(cfg, tokenizer)
    check_output_dir(cfg.output_dir)
    cfg = cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"prepared_dir": _absolute(cfg.data.prepared_dir)}),
        "ray": cfg.ray.model_copy(update={"storage_path": _absolute(cfg.ray.storage_path), "run_name": cfg.run_name}),
        "output_dir": _absolute(cfg.output_dir)})
    run_dir = f"{cfg.ray.storage_path.rstrip('/')}/{cfg.run_name}"
    resumed = pin_run(cfg, manifest["content_hash"], run_dir)
    deepspeed = json.loads(Path(cfg.train.deepspeed).read_text()) if cfg.train.deepspeed else None
    run_key = hashlib.sha1(run_dir.encode()).hexdigest()[:10]
    plan = TrainPlan(
        config=cfg, deepspeed=deepspeed, run_dir=run_dir, provenance=provenance(),
        local_dir=str(Path(tempfile.gettempdir()) / "complyray-train" / f"{cfg.run_name}-{run_key}"),
        # The prompt format the data was prepared with: inference must build the same prompts.
        data={"content_hash": manifest["content_hash"], "prepared_dir": cfg.data.prepared_dir,
              "format": manifest.get("config", {}).get("format", {}), **manifest["training"]},
    )
    log.info("training %s on %d worker(s) (%s): effective batch %d = micro %d x accum %d x workers %d; "
             "%d train / %d validation examples; run %s%s", cfg.model.name_or_path, cfg.ray.num_workers,
             "GPU" if cfg.ray.use_gpu else "CPU", cfg.effective_batch, cfg.train.micro_batch_size,
             cfg.train.grad_accum, cfg.ray.num_workers, manifest["training"]["train"]["examples"],
             manifest["training"]["validation"]["examples"], run_dir, " (resuming)" if resumed else "")
    trainer = TorchTrainer(
        functools.partial(train_worker, plan),
        scaling_config=ScalingConfig(num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
                                     resources_per_worker=cfg.ray.resources_per_worker),
        run_config=RunConfig(
            name=cfg.run_name, storage_path=cfg.ray.storage_path,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.ray.checkpoints_to_keep,
                                               checkpoint_score_attribute="eval_loss", checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=cfg.ray.max_failures)),
    )
    trainer.fit()
    metrics = json.loads(_read_text(f"{cfg.output_dir}/metrics.json"))
    return TrainResult(cfg.output_dir, run_dir, metrics, resumed)


def _read_text(uri: str) -> str:
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def _setup_worker_logging(rank: int) -> None:
    import datasets
    import transformers

    # Libraries stay at WARNING (their INFO dumps whole model configs); our own progress on rank 0 only.
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.WARNING)  # Ray leaves the root at INFO, where dill disassembles code
    logging.getLogger("pipeline").setLevel(logging.INFO if rank == 0 else logging.WARNING)
    transformers.logging.set_verbosity_warning()
    datasets.disable_progress_bars()


def train_worker(plan: TrainPlan) -> None:
    """Ray Train worker loop: data, model, resume, train, artifacts. All workers run it in lockstep."""
    import ray.train
    import ray.train.torch

    from pipeline.train.artifacts import FaultDrill, ReportToRay, reporting, write_artifacts
    from pipeline.train.data import load_datasets

    cfg = plan.config
    ctx = ray.train.get_context()
    rank, local_rank = ctx.get_world_rank(), ctx.get_local_rank()
    _setup_worker_logging(rank)
    import torch

    local_dir = Path(plan.local_dir)
    hf_dir = local_dir / "hf"  # shared by this node's workers: rank 0 writes the model, each rank its RNG state
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and local_rank == 0 and hf_dir.exists():
        shutil.rmtree(hf_dir)  # a fresh run must not pick up checkpoints of an earlier run of the same name
    choice = resolve_precision(cfg)
    precision = choice.precision
    # What this worker resolved 'auto' to is written into the artifact's training_config.json.
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": precision})})
    device = ray.train.torch.get_device() if cfg.ray.use_gpu else None
    log.info("worker %d/%d: precision %s (%s), device %s, %d torch threads", rank, ctx.get_world_size(),
             precision, choice.reason, device or "cpu", torch.get_num_threads())
    tokenizer = load_tokenizer(cfg.model.name_or_path, cfg.model.revision, cfg.model.trust_remote_code)
    train_ds, eval_ds = load_datasets(cfg.data.prepared_dir, cfg.data.limit, cfg.data.eval_limit,
                                      plan.data["max_seq_len"], tokenizer.eos_token_id)
    report_to, tensorboard_dir, callbacks = [], None, [ReportToRay(plan.config, plan.data)]
    if rank == 0:
        report_to, tensorboard_dir, loggers = reporting(cfg, plan.run_dir, local_dir)
        callbacks += loggers
    if cfg.train.fault_drill_step is not None:
        callbacks.append(FaultDrill(cfg.train.fault_drill_step, armed=checkpoint is None))
    with contextlib.ExitStack() as stack:
        resume = None
        if checkpoint is not None:
            resume = stack.enter_context(checkpoint.as_directory())
        trainer = build_trainer(cfg, tokenizer, train_ds, eval_ds, str(hf_dir), precision=precision,
                                deepspeed=plan.deepspeed, callbacks=callbacks, device=device,
                                report_to=report_to, eval_on_start=cfg.train.eval_on_start and resume is None)
        resumed_from = _resume_step(resume)
        if resumed_from is not None:
            log.info("resuming from the step-%d checkpoint %s", resumed_from, checkpoint.path)
        started = time.time()
        trainer.train(resume_from_checkpoint=resume)
        metrics = write_artifacts(trainer, cfg, plan, resumed_from, time.time() - started, rank,
                                  precision_reason=choice.reason, tensorboard_dir=tensorboard_dir)
    ray.train.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})


def _resume_step(resume: str | None) -> int | None:
    if resume is None:
        return None
    state = json.loads(Path(resume, "trainer_state.json").read_text())
    return int(state["global_step"])
