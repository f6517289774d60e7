"""Config of the train stage (jobs/train.py): the base model, the prepared data, the LoRA adapter's shape,
QLoRA loading, the training loop and the Ray Train workers; `TrainConfig` checks their combinations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, model_validator

from pipeline.config import ModelConfig, RayConfig, Strict, cross_field_error



DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraConfig(Strict):
    r: int = Field(16, ge=1, description="LoRA rank; must be >= 1 (r=0 would train nothing).")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training.")
    target_modules: list[str] = Field(
        DEFAULT_LORA_TARGETS, min_length=1,
        description="Linear layers that get adapters (all attention and MLP projections of Llama/Mistral-style models).",
    )


class QuantizationConfig(Strict):
    load_in_4bit: bool = Field(False, description="QLoRA: load the frozen base in 4-bit with bitsandbytes (needs CUDA).")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type; nf4 is the QLoRA paper's.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too (~0.4 bit/param saved).")
    compute_dtype: Literal["bf16", "fp16", "fp32"] = Field("bf16", description="Dtype the 4-bit weights are dequantised to for matmuls.")


class TrainLoopConfig(Strict):
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (after warmup).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training split; ignored when max_steps is set.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs when set.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per worker per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of the steps spent warming the learning rate up.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warmup.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto': bf16 autocast on a bf16-capable GPU, and on a CPU only where it computes bf16 "
        "natively (AVX512-BF16/AMX, or a start-up probe measures it faster), else fp32; or force 'bf16' / 'fp32' "
        "(bf16 on a CPU that emulates it runs ~50x slower and is warned about).")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: ~30% slower, far less activation memory.")
    packing: Literal["padding_free", "none"] = Field(
        "none", description="'padding_free': a micro-batch is one flattened sequence with position ids (no pad "
        "tokens computed; best with flash attention on GPU); 'none': right padding to the longest in the batch.")
    sampling: Literal["random", "group_by_length", "batch_rebalance"] = Field(
        "random", description="Order of training examples: 'random'; 'group_by_length' (similar lengths share a "
        "micro-batch: less padding); 'batch_rebalance' (variable micro-batch sizes of balanced token cost).")
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3"] = Field(
        "sdpa", description="Attention kernel; flash_attention_* need the flash-attn package and a GPU.")
    fused_lm_head: bool = Field(
        True, description="TRL's fused LM head: logits only for answer tokens, in tiles, never the whole "
        "vocab x sequence tensor (less memory on GPU). Off: the model's own head, faster for small CPU models.")
    verdict_loss_weight: float = Field(
        1.0, ge=1.0, description="Weight of each answer's verdict token in the training loss (1: the plain token "
        "average). The verdict is one token among the answer's hundreds; > 1 puts more of the gradient on the "
        "decision itself. Needs fused_lm_head=false; the evaluation loss stays unweighted.")
    eval_steps: int = Field(50, ge=1, description="Evaluate the validation split every this many optimizer steps.")
    eval_on_start: bool = Field(False, description="Also evaluate before the first step (a baseline eval_loss; "
                                "skipped when resuming).")
    save_steps: int = Field(50, ge=1, description="Checkpoint every this many steps; a multiple of eval_steps so "
                            "every checkpoint is ranked by a fresh eval_loss.")
    logging_steps: int = Field(10, ge=1, description="Log loss, learning rate, grad norm and throughput every N steps.")
    early_stopping_patience: int | None = Field(
        3, ge=1, description="Stop after this many evaluations without eval_loss improving (null: never stop early).")
    early_stopping_threshold: float = Field(0.0, ge=0.0, description="Smallest eval_loss drop that counts as improving.")
    max_seq_len: int | None = Field(
        None, ge=16, description="Longest example allowed (null: the prepared data's data.max_seq_len). Longer "
        "rows fail the job; training never cuts a sequence.")
    optim: Literal["adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit",
                   "adafactor", "sgd"] = Field("adamw_torch", description="Optimizer (the *_8bit ones need bitsandbytes + CUDA).")
    seed: int = Field(42, description="Seed for adapter init, data order and dropout.")
    deepspeed: str | None = Field(
        None, description="DeepSpeed JSON (ray_cluster/deepspeed/zero2.json or zero3.json); null: plain DDP.")
    full_finetune: bool = Field(False, description="Train every weight instead of a LoRA adapter.")
    merge_adapter: bool = Field(
        False, description="Also write <output_dir>/merged: the adapter merged into the unquantised base, bf16.")
    calibration: Literal["temperature", "platt", "none"] = Field(
        "temperature", description="After training, fit this scale for P(NON_COMPLIANT) on the validation split "
        "(one forward pass per example) and store it as calibration.json in the artifact; the engine applies it. "
        "platt also fits a bias; none: no scale. Skipped under ZeRO-3 (evaluate the validation split instead).")
    cascade_recall: float | None = Field(
        0.98, gt=0, le=1, description="After training, fit the bag-of-words first stage (pipeline/cascade.py) on the "
        "train split with its threshold chosen on the validation split to keep this share of violations; stored "
        "in the artifact (cascade.json), used by archive scoring to spare the LLM the clearly clean messages. "
        "null: none.")
    torch_compile: bool = Field(False, description="torch.compile the model (long warm-up; GPU only pays off).")
    tensorboard: bool = Field(True, description="Write TensorBoard logs to <ray.storage_path>/<run_name>/tensorboard.")
    mlflow_tracking_uri: str | None = Field(None, description="Also log to this MLflow server (needs mlflow installed).")
    fault_drill_step: int | None = Field(
        None, ge=1, description="Fault drill: the first attempt raises right after checkpointing this step, so Ray "
        "restarts the workers and training resumes from that checkpoint. Needs ray.max_failures >= 1. Leave null.")


class TrainDataConfig(Strict):
    prepared_dir: str = Field("runs/prepared", description="Output of jobs/prepare.py: split=train/, "
                              "split=validation/ Parquet and _manifest.json (a local/shared folder or cloud URI).")
    limit: int | None = Field(None, ge=1, description="Train on the first N training examples only (quick runs).")
    eval_limit: int | None = Field(None, ge=1, description="Evaluate on the first N validation examples only.")


class TrainRayConfig(RayConfig):
    num_workers: int = Field(1, ge=1, description="Training workers (one per GPU when use_gpu).")
    use_gpu: bool = Field(False, description="Give each worker a GPU (needed for 4-bit and DeepSpeed).")
    resources_per_worker: dict[str, float] | None = Field(
        None, description="Ray resources of one worker, e.g. {CPU: 8, GPU: 1} (null: 1 CPU, plus 1 GPU when use_gpu).")
    storage_path: str = Field("runs/ray", description="Where Ray Train keeps checkpoints and TensorBoard logs: a "
                              "folder every node sees (NFS) or a cloud URI; relative paths are made absolute.")
    run_name: str | None = Field(
        None, description="Run folder under storage_path; submitting again with the same name resumes from its "
        "latest checkpoint. Null: the name of output_dir.")
    max_failures: int = Field(0, ge=-1, description="Worker-group restarts from the latest checkpoint (-1: unlimited).")
    checkpoints_to_keep: int = Field(2, ge=1, description="Checkpoints kept in storage, best eval_loss first "
                                     "(the latest is always kept too, for resuming).")


def deepspeed_zero_stage(path: str) -> int:
    """The ZeRO stage of a DeepSpeed JSON config (0 when it has none). Raises ValueError if unreadable."""
    try:
        ds = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read DeepSpeed config {path}: {e}") from e
    return int((ds.get("zero_optimization") or {}).get("stage", 0))


class TrainConfig(Strict):
    """Config of jobs/train.py: prepared Parquet -> LoRA/QLoRA/full fine-tune on Ray Train -> adapter folder."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model to fine-tune.")
    data: TrainDataConfig = Field(default_factory=TrainDataConfig, description="Prepared data to train on.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter shape.")
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig, description="QLoRA base loading.")
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig, description="Optimisation, schedule, checkpoints.")
    ray: TrainRayConfig = Field(default_factory=TrainRayConfig, description="Workers, storage and fault tolerance.")
    output_dir: str = Field("runs/adapter", description="Final artifact folder: adapter, tokenizer, metrics, loss curve.")

    @model_validator(mode="after")
    def _check_combinations(self, info: ValidationInfo) -> "TrainConfig":
        q, t, r = self.quantization, self.train, self.ray
        errors = []
        stage = 0
        # Ray Train workers re-validate with the JSON the driver already read (context "deepspeed"):
        # their working directory need not hold the file a relative path names.
        loaded = (info.context or {}).get("deepspeed")
        if t.deepspeed is not None and loaded is not None:
            stage = int((loaded.get("zero_optimization") or {}).get("stage", 0))
        elif t.deepspeed is not None:
            try:
                stage = deepspeed_zero_stage(t.deepspeed)
            except ValueError as e:
                errors.append(cross_field_error(("train", "deepspeed"), t.deepspeed, f"{e}; use a JSON from ray_cluster/deepspeed/"))
        if stage == 3 and q.load_in_4bit:
            errors.append(cross_field_error(
                ("train", "deepspeed"), t.deepspeed,
                "ZeRO-3 cannot be combined with quantization.load_in_4bit=true: a pre-quantised 4-bit model cannot be "
                "partitioned by ZeRO-3. Use bf16 LoRA with ZeRO-3 (quantization.load_in_4bit=false) or QLoRA with DDP "
                "(train.deepspeed=null)"))
        if q.load_in_4bit and not r.use_gpu:
            errors.append(cross_field_error(("quantization", "load_in_4bit"), True,
                                             "bitsandbytes 4-bit needs CUDA: set ray.use_gpu=true or load_in_4bit=false"))
        if t.deepspeed is not None and not r.use_gpu:
            errors.append(cross_field_error(("train", "deepspeed"), t.deepspeed,
                                             "DeepSpeed here needs GPUs: set ray.use_gpu=true or train.deepspeed=null"))
        if t.full_finetune and q.load_in_4bit:
            errors.append(cross_field_error(("train", "full_finetune"), True,
                                             "a 4-bit base cannot be fully fine-tuned: set quantization.load_in_4bit=false"))
        if t.full_finetune and t.merge_adapter:
            errors.append(cross_field_error(("train", "merge_adapter"), True,
                                             "train.full_finetune=true trains no adapter to merge; set merge_adapter=false"))
        if q.load_in_4bit and t.precision == "fp32":
            errors.append(cross_field_error(("train", "precision"), "fp32",
                                             "QLoRA trains in bf16 autocast; use train.precision=auto or bf16"))
        if t.verdict_loss_weight != 1.0 and t.fused_lm_head:
            errors.append(cross_field_error(("train", "verdict_loss_weight"), t.verdict_loss_weight,
                                             "weighting the verdict token needs the model's own LM head: set "
                                             "train.fused_lm_head=false (or verdict_loss_weight=1)"))
        if t.save_steps % t.eval_steps:
            errors.append(cross_field_error(
                ("train", "save_steps"), t.save_steps,
                f"must be a multiple of train.eval_steps={t.eval_steps} so each checkpoint is ranked by a fresh eval_loss"))
        if t.attn_implementation.startswith("flash") and not r.use_gpu:
            errors.append(cross_field_error(("train", "attn_implementation"), t.attn_implementation,
                                             "flash attention needs a GPU: use sdpa on CPU"))
        if t.optim.endswith("8bit") and not r.use_gpu:
            errors.append(cross_field_error(("train", "optim"), t.optim, "8-bit optimizers need CUDA: use adamw_torch"))
        if t.fault_drill_step is not None:
            if r.max_failures == 0:
                errors.append(cross_field_error(("train", "fault_drill_step"), t.fault_drill_step,
                                                 "a fault drill needs ray.max_failures >= 1 to restart"))
            if t.fault_drill_step % t.save_steps:
                errors.append(cross_field_error(("train", "fault_drill_step"), t.fault_drill_step,
                                                 f"must be a checkpoint step (a multiple of train.save_steps={t.save_steps})"))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def run_name(self) -> str:
        """The Ray Train run folder name: ray.run_name, else the output folder's name."""
        return self.ray.run_name or Path(self.output_dir.rstrip("/")).name

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step over all workers."""
        return self.train.micro_batch_size * self.train.grad_accum * self.ray.num_workers
