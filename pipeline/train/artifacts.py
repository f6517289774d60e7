"""What a training run measures, checkpoints and leaves behind.

Callbacks: `Throughput` (non-padding tokens per second of pure training time, peak GPU memory),
`ReportToRay` (every HF checkpoint goes to Ray Train with the latest metrics; it times each save and
upload) and `FaultDrill`.
`write_artifacts` turns the finished trainer into the output folder: adapter (or full model),
tokenizer with its chat template, optional merged bf16 model, the resolved config with the data's
content hash, metrics.json and a loss-curve PNG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path

from typing import TYPE_CHECKING

from transformers import TrainerCallback

from pipeline.config import config_to_dict

from pipeline.train.config import TrainConfig
from pipeline.models import load_tokenizer, resolve_model_path

if TYPE_CHECKING:
    from pipeline.train.run import TrainPlan

log = logging.getLogger(__name__)


def peak_gpu_memory_gb() -> float | None:
    """Peak memory allocated by torch on this process's GPU since start (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


class Throughput(TrainerCallback):
    """Times optimizer steps (not evaluation or checkpointing) and turns the trainer's count of
    non-padding input tokens (summed over all workers) into tokens per second."""

    def __init__(self, effective_batch: int):
        self.effective_batch = effective_batch
        self.seconds = 0.0
        self._window_seconds = 0.0
        self._start_tokens = self._window_tokens = 0
        self._first: tuple[int, float] | None = None  # the attempt's first step: (tokens, seconds), warm-up
        self._t0 = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start_tokens = self._window_tokens = state.num_input_tokens_seen  # restored on resume
        self._first = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the optimizer step is asynchronous: time what the GPU did
        elapsed = time.perf_counter() - self._t0
        self.seconds += elapsed
        self._window_seconds += elapsed
        if self._first is None:
            self._first = (state.num_input_tokens_seen - self._start_tokens, elapsed)

    def window(self, state) -> dict:
        """Metrics since the previous call: tokens/s, effective batch, peak GPU memory."""
        tokens = state.num_input_tokens_seen - self._window_tokens
        out = {"tokens_per_second": round(tokens / self._window_seconds, 1) if self._window_seconds else 0.0,
               "effective_batch": self.effective_batch}
        peak = peak_gpu_memory_gb()
        if peak is not None:
            out["peak_gpu_memory_gb"] = peak
        self._window_tokens, self._window_seconds = state.num_input_tokens_seen, 0.0
        return out

    def totals(self, state) -> dict:
        """This attempt's training tokens, seconds and tokens/s; `steady_tokens_per_second` leaves out the
        attempt's first step (CUDA and kernel warm-up), so short runs compare like long ones."""
        tokens = state.num_input_tokens_seen - self._start_tokens
        first_tokens, first_seconds = self._first or (0, 0.0)
        rest = self.seconds - first_seconds
        return {"train_tokens": int(tokens), "train_seconds": round(self.seconds, 1),
                "tokens_per_second": round(tokens / self.seconds, 1) if self.seconds else 0.0,
                "steady_tokens_per_second": round((tokens - first_tokens) / rest, 1) if rest > 0 else None}


class ReportToRay(TrainerCallback):
    """After each HF checkpoint: write the resolved config into it, then report it to Ray Train with
    every metric logged so far (the latest value of each, eval_loss included, which Ray ranks by).

    The checkpoint folder is shared by the workers of a node, so only each node's local rank 0
    uploads it; Ray merges the uploads of all nodes into one checkpoint directory. `ray.train.report`
    is a barrier, so every rank has finished writing its files before the upload starts.
    """

    def __init__(self, cfg: TrainConfig, data: dict):
        self.provenance = {"config": config_to_dict(cfg), "data": data}
        self.saves: list[dict] = []  # this attempt's checkpoints: step, size, save and report seconds
        self._mark: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()  # after Throughput's CUDA synchronize (it is called first)

    def on_evaluate(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()  # the trainer saves right after the evaluation of a save step

    def on_save(self, args, state, control, **kwargs):
        import ray.train

        saved = time.perf_counter()
        ctx = ray.train.get_context()
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ctx.get_world_rank() == 0 and folder.is_dir():
            (folder / "training_config.json").write_text(json.dumps(self.provenance, indent=2, default=str))
        metrics = {}
        for entry in state.log_history:
            metrics.update(entry)
        metrics["step"] = state.global_step
        upload = ctx.get_local_rank() == 0 and folder.is_dir()
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if upload else None
        started = time.perf_counter()
        ray.train.report(metrics, checkpoint=checkpoint)
        self.saves.append({
            "step": state.global_step, "bytes": folder_bytes(folder) if upload else None,
            "save_seconds": round(saved - self._mark, 2) if self._mark is not None else None,
            "report_seconds": round(time.perf_counter() - started, 2)})


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def gather_from_workers(value):
    """`value` from every worker of the process group, in rank order ([value] outside one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


class FaultDrill(TrainerCallback):
    """Raises right after the checkpoint of `step` is reported, on an attempt that started fresh,
    so Ray restarts the workers and the run must resume from that checkpoint."""

    def __init__(self, step: int, armed: bool):
        self.step, self.armed = step, armed

    def on_save(self, args, state, control, **kwargs):
        if self.armed and state.global_step == self.step:
            raise RuntimeError(f"fault drill: failing on purpose after checkpointing step {self.step}")


def summarize(state, throughput: Throughput, cfg: TrainConfig, data: dict,
              resumed_from: int | None, seconds: float) -> dict:
    """metrics.json: losses per log and per evaluation, final and best values, throughput, batch."""
    train_logs = [e for e in state.log_history if "loss" in e]
    eval_logs = [e for e in state.log_history if "eval_loss" in e]
    totals, workers = throughput.totals(state), cfg.ray.num_workers
    metrics = {
        "global_step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0.0, 3),
        "early_stopped": state.global_step < state.max_steps,
        "train_loss_first": train_logs[0]["loss"] if train_logs else None,
        "train_loss_last": train_logs[-1]["loss"] if train_logs else None,
        "eval_loss_first": eval_logs[0]["eval_loss"] if eval_logs else None,
        "eval_loss_last": eval_logs[-1]["eval_loss"] if eval_logs else None,
        "best_eval_loss": state.best_metric, "best_step": state.best_global_step,
        **totals,
        "tokens_per_second_per_worker": round(totals["tokens_per_second"] / workers, 1),
        "steady_tokens_per_second_per_worker": (round(totals["steady_tokens_per_second"] / workers, 1)
                                                if totals["steady_tokens_per_second"] else None),
        "effective_batch": cfg.effective_batch, "micro_batch_size": cfg.train.micro_batch_size,
        "grad_accum": cfg.train.grad_accum, "num_workers": cfg.ray.num_workers,
        "peak_gpu_memory_gb": peak_gpu_memory_gb(),
        "resumed_from_step": resumed_from, "attempt_seconds": round(seconds, 1),
        "content_hash": data["content_hash"], "max_seq_len": data["max_seq_len"],
        "train_examples": data["train"]["examples"], "validation_examples": data["validation"]["examples"],
        "eval_losses": [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in eval_logs],
        "train_losses": [{k: e[k] for k in ("step", "loss", "learning_rate", "grad_norm", "tokens_per_second")
                          if k in e} for e in train_logs],
    }
    return metrics


def plot_losses(metrics: dict, path: Path) -> None:
    """Train and validation loss against the optimizer step, as a PNG (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    train, evals = metrics["train_losses"], metrics["eval_losses"]
    ax.plot([e["step"] for e in train], [e["loss"] for e in train], label="train")
    ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss on answer tokens")
    ax.set_title(f"{metrics['global_step']} steps, effective batch {metrics['effective_batch']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def merge_adapter(cfg: TrainConfig, adapter_dir: Path, out_dir: Path) -> None:
    """Merge the adapter into the base reloaded unquantised in its original precision on the CPU
    (never into 4-bit weights, which would bake in quantisation error), saved as bf16."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model.name_or_path), dtype="auto",
                                                revision=cfg.model.revision,
                                                trust_remote_code=cfg.model.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(out_dir)
    load_tokenizer(cfg.model.name_or_path, cfg.model.revision, cfg.model.trust_remote_code).save_pretrained(out_dir)


def publish(stage: Path, output_dir: str) -> None:
    """Copy the staged artifact to output_dir (a local folder or a cloud URI), replacing an earlier one only
    once the copy is complete (pipeline.outputs.staged_output): a failed copy leaves the earlier one as it was."""
    import pyarrow.fs

    from pipeline.outputs import staged_output

    with staged_output(output_dir, access=None) as target:
        if "://" in target:
            pyarrow.fs.copy_files(str(stage), target)
        else:
            shutil.copytree(stage, target, dirs_exist_ok=True)


def write_artifacts(trainer, cfg: TrainConfig, plan: TrainPlan, resumed_from: int | None, seconds: float,
                    rank: int, precision_reason: str = "", tensorboard_dir: Path | None = None) -> dict:
    """Save the trained model on every rank (ZeRO-3 gathers shards), then on rank 0 write the rest
    and publish the folder to ``output_dir``. `cfg` is the worker's resolved config (precision 'auto'
    replaced by what it chose; `precision_reason` says why). `tensorboard_dir`: rank 0's local TensorBoard
    logs, copied into the run folder when that is a cloud URI. Returns the metrics."""
    from pipeline.train.calibrate import fit_artifact_calibration, fit_artifact_cascade

    stage = Path(plan.local_dir) / "artifact"
    if rank == 0 and stage.exists():
        shutil.rmtree(stage)
    trainer.save_model(str(stage))  # adapter (or full model) + tokenizer, written by rank 0
    metrics = summarize(trainer.state, trainer.throughput, cfg, plan.data, resumed_from, seconds)
    # Every GPU's peak, and what checkpointing cost (rank 0's view: the node's folder, the upload to storage).
    metrics["peak_gpu_memory_gb_per_worker"] = gather_from_workers(metrics["peak_gpu_memory_gb"])
    metrics["checkpoints"] = next((c.saves for c in trainer.callback_handler.callbacks
                                   if isinstance(c, ReportToRay)), [])
    if rank != 0:
        return metrics
    (stage / "training_args.bin").unlink(missing_ok=True)  # a pickle of HF args; training_config.json says it all
    config = {"created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **plan.provenance,
              "config": config_to_dict(cfg), "precision_reason": precision_reason, "data": plan.data,
              "run_dir": plan.run_dir}
    (stage / "training_config.json").write_text(json.dumps(config, indent=2, default=str))
    # After training_config.json: the scale is fitted with the artifact's own prompt format.
    fit_artifact_calibration(trainer.model, trainer.processing_class, cfg, stage)
    fit_artifact_cascade(cfg, stage)
    (stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_losses(metrics, stage / "loss_curve.png")
    if cfg.train.merge_adapter:
        log.info("merging the adapter into the unquantised base")
        merge_adapter(cfg, stage, stage / "merged")
    publish(stage, cfg.output_dir)
    if tensorboard_dir is not None and "://" in plan.run_dir and tensorboard_dir.is_dir():
        import pyarrow.fs

        # Merged into the run's logs, not swapped: earlier attempts' event files stay beside this one's.
        pyarrow.fs.copy_files(str(tensorboard_dir), f"{plan.run_dir}/tensorboard")
    log.info("artifact written to %s: %d steps, eval_loss %s -> %s, %.1f tokens/s", cfg.output_dir,
             metrics["global_step"], metrics["eval_loss_first"], metrics["eval_loss_last"],
             metrics["tokens_per_second"])
    return metrics


def reporting(cfg: TrainConfig, run_dir: str, local_dir: Path) -> tuple[list[str], Path | None, list]:
    """Where rank 0 logs: (HF `report_to` names, the TensorBoard folder or None, logger callbacks).

    TensorBoard goes under the run folder (written locally first when storage is a cloud URI), through a
    callback given that folder; MLflow when a tracking URI is set. Raises RuntimeError when mlflow is missing.
    """
    report_to, tensorboard_dir, callbacks = [], None, []
    if cfg.train.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        tensorboard_dir = Path(f"{run_dir}/tensorboard" if "://" not in run_dir else local_dir / "tensorboard")
        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(tensorboard_dir))))
    if cfg.train.mlflow_tracking_uri:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            raise RuntimeError("train.mlflow_tracking_uri is set but mlflow is not installed on the workers: "
                               "pip install mlflow, or set train.mlflow_tracking_uri=null")
        os.environ["MLFLOW_TRACKING_URI"] = cfg.train.mlflow_tracking_uri  # read by mlflow itself
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "complyray")
        report_to.append("mlflow")
    return report_to, tensorboard_dir, callbacks
