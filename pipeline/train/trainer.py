"""The model and the TRL trainer one Ray Train worker trains (also used in-process by bench/bench_train.py).

`build_trainer` loads the base model (4-bit for QLoRA), attaches the LoRA adapter the `lora` section
describes (`peft_lora_config`), and wires TRL's SFTTrainer for pre-tokenised data: throughput logging,
early stopping, and the optional extra weight on each answer's verdict token (`VerdictWeight`).
"""

from __future__ import annotations

from pipeline.models import resolve_model_path
from pipeline.train.artifacts import Throughput
from pipeline.train.config import LoraConfig, TrainConfig


def resolve_precision(cfg: TrainConfig):
    """The precision this worker trains in, with the reason (a `pipeline.precision.Choice`): on GPU,
    'auto' is bf16 where the GPU supports it; on CPU, bf16 only where the CPU computes it natively."""
    if not cfg.ray.use_gpu:
        from pipeline.precision import cpu_precision

        return cpu_precision(cfg.train.precision)
    import torch

    from pipeline.precision import Choice

    if cfg.train.precision != "auto":
        return Choice(cfg.train.precision, f"{cfg.train.precision} as configured (GPU)")
    native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return Choice("bf16" if native else "fp32", f"auto: GPU {'with' if native else 'without'} bf16 support")


def load_model(cfg: TrainConfig, precision: str, device=None):
    """The base model: 4-bit on `device` for QLoRA, else bf16 (LoRA, or full fine-tuning under
    DeepSpeed, which keeps fp32 master weights) or fp32 (CPU, full fine-tuning without DeepSpeed)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    t, q = cfg.train, cfg.quantization
    bf16_weights = precision == "bf16" and (not t.full_finetune or t.deepspeed is not None)
    dtype = torch.bfloat16 if bf16_weights else torch.float32
    kwargs = dict(dtype=dtype, attn_implementation=t.attn_implementation, revision=cfg.model.revision,
                  trust_remote_code=cfg.model.trust_remote_code)
    if q.load_in_4bit:
        compute = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[q.compute_dtype]
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=compute)
        index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
        kwargs["device_map"] = {"": index}  # each DDP worker holds its own full 4-bit copy on its own GPU
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model.name_or_path), **kwargs)
    model.config.use_cache = False  # the KV cache is useless in training and clashes with checkpointing
    return model


def peft_lora_config(lora: LoraConfig):
    """PEFT's LoraConfig from the `lora` section: rank, scaling, dropout, target layers."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")


def sft_args(cfg: TrainConfig, output_dir: str, precision: str, deepspeed: dict | None = None,
             report_to: list[str] | None = None, eval_on_start: bool = False):
    """TRL SFTConfig for pre-tokenised data: no TRL dataset preparation, truncation or packing."""
    from trl import SFTConfig

    t = cfg.train
    return SFTConfig(
        output_dir=output_dir, run_name=cfg.run_name, seed=t.seed, data_seed=t.seed,
        per_device_train_batch_size=t.micro_batch_size, per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate,
        num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,  # a float < 1 is a ratio in transformers 5
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, optim=t.optim,
        bf16=precision == "bf16", fp16=False, use_cpu=not cfg.ray.use_gpu,
        gradient_checkpointing=t.gradient_checkpointing,  # non-reentrant by default in transformers 5
        eval_strategy="steps", eval_steps=t.eval_steps, eval_on_start=eval_on_start,
        prediction_loss_only=True,  # else evaluation keeps every example's vocab-wide logits (GBs)
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=cfg.ray.checkpoints_to_keep + 1,
        logging_strategy="steps", logging_steps=t.logging_steps, logging_first_step=True,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
        restore_callback_states_from_checkpoint=True,  # early-stopping patience survives a restart
        report_to=report_to or "none", disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",
        train_sampling_strategy=t.sampling, length_column_name="length", remove_unused_columns=False,
        # The data is final: TRL must not truncate (max_length), re-tokenise or rebuild labels.
        max_length=None, packing=False, padding_free=t.packing == "padding_free", pad_to_multiple_of=None,
        dataset_kwargs={"skip_prepare_dataset": True}, completion_only_loss=True,
        ddp_find_unused_parameters=False, deepspeed=deepspeed, torch_compile=t.torch_compile,
        dataloader_num_workers=0,
    )


class VerdictWeight:
    """The extra loss that gives each answer's verdict token `weight` times the weight of any other token.

    The verdict is one token among the answer's hundreds, yet it is the decision the detector exists for;
    with a plain token average a small model learns the answer's form long before the judgement. Each
    answer starts where the labels stop being -100 (several per row when padding-free packing is on); its
    verdict token sits right after the fixed prefix `{"final_verdict": "`, found by matching the prefix's
    ids (rows whose tokens do not match it are left unweighted). Returns (weight - 1) x the verdict
    tokens' summed cross-entropy over the same denominator as the token average.
    """

    def __init__(self, prefix: list[int], weight: float):
        self.prefix, self.weight = prefix, weight

    def positions(self, labels) -> tuple[list[int], list[int]]:
        """(rows, columns) of the verdict tokens in `labels` [batch, seq]."""
        import torch

        answer = labels != -100
        starts = answer & ~torch.nn.functional.pad(answer[:, :-1], (1, 0), value=False)
        k = len(self.prefix)
        rows, cols = [], []
        for r, c in starts.nonzero().tolist():
            if c + k < labels.shape[1] and labels[r, c:c + k].tolist() == self.prefix:
                rows.append(r)
                cols.append(c + k)
        return rows, cols

    def extra_loss(self, logits, labels, num_items_in_batch=None):
        import torch

        rows, cols = self.positions(labels)
        if not rows:
            return logits.new_zeros(())
        r, c = torch.tensor(rows, device=logits.device), torch.tensor(cols, device=logits.device)
        ce = torch.nn.functional.cross_entropy(logits[r, c - 1].float(), labels[r, c], reduction="sum")
        denom = num_items_in_batch if num_items_in_batch is not None else (labels[:, 1:] != -100).sum()
        return (self.weight - 1.0) * ce / denom


def _trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class ComplianceSFTTrainer(SFTTrainer):
        """SFTTrainer whose training logs also carry throughput, effective batch and peak GPU memory.

        `log` is the one place whose dict reaches the log history, TensorBoard, MLflow, the progress
        bar and Ray's reports alike; a callback's `on_log` runs after some of them have read it.
        """

        throughput = None
        fused_lm_head = True
        verdict_weight: VerdictWeight | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.fused_lm_head:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # The model's own head and loss (same labels, same token averaging); skips TRL's metrics.
            inputs = {**inputs, "use_cache": False}
            if self.verdict_weight is None or not model.training:  # evaluation loss stays the plain average
                return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = Trainer.compute_loss(self, model, inputs, True, num_items_in_batch)
            # Trainer scales a loss averaged over the global token count by the process count; so must we.
            scale = (self.accelerator.num_processes if self.args.average_tokens_across_devices
                     and self.model_accepts_loss_kwargs and num_items_in_batch is not None else 1)
            loss = loss + scale * self.verdict_weight.extra_loss(outputs.logits, inputs["labels"], num_items_in_batch)
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, start_time=None):
            if self.throughput is not None and "loss" in logs:
                logs.update(self.throughput.window(self.state))
            super().log(logs, start_time)

    return ComplianceSFTTrainer


def build_trainer(cfg: TrainConfig, tokenizer, train_ds, eval_ds, output_dir: str, *, precision: str,
                  deepspeed: dict | None = None, callbacks: list | None = None, device=None,
                  report_to: list[str] | None = None, eval_on_start: bool = False):
    """An SFTTrainer ready to train: the model loaded (after the args, so ZeRO-3 can partition it at
    load time), LoRA attached unless `train.full_finetune`, throughput and early stopping wired in."""
    from transformers import EarlyStoppingCallback

    args = sft_args(cfg, output_dir, precision, deepspeed, report_to, eval_on_start)
    model = load_model(cfg, precision, device)
    throughput = Throughput(cfg.effective_batch)
    extra = [throughput, *(callbacks or [])]
    if cfg.train.early_stopping_patience is not None:
        extra.append(EarlyStoppingCallback(cfg.train.early_stopping_patience, cfg.train.early_stopping_threshold))
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
        peft_config=None if cfg.train.full_finetune else peft_lora_config(cfg.lora), callbacks=extra)
    trainer.throughput = throughput
    trainer.fused_lm_head = cfg.train.fused_lm_head
    if cfg.train.verdict_loss_weight != 1.0:
        from pipeline.formatting import ChatFormatter

        prefix, _ = ChatFormatter(tokenizer).verdict_tokens()
        trainer.verdict_weight = VerdictWeight(prefix, cfg.train.verdict_loss_weight)
    return trainer
