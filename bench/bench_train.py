"""QLoRA training throughput on the Mistral-7B architecture: this project's trainer vs the plain recipe.

    python bench/bench_train.py --prepared runs/prepared_mistral --steps 30              # on one GPU
    python bench/bench_train.py --prepared runs/prepared_mistral --steps 30 \
        --ours train.micro_batch_size=16 train.sampling=batch_rebalance                 # try a lever
    python bench/bench_train.py --prepared runs/prepared_mistral --steps 2 --check       # CPU smoke run

Both variants run in this one process on the same prepared rows (data prepared with the Mistral v3
tokenizer: the tiny random Mistral of the tests has the same one), on a random-weight Mistral-7B
(`save_random_mistral(dir, "7b", dtype="bfloat16")`, built once into --model-dir): speed does not
depend on the weights' values.

  plain  the original plan: HF Trainer + PEFT, 4-bit NF4 base, batch 4 padded to the longest, loss on
         every token (no prompt masking), DataCollatorForLanguageModeling, paged_adamw_8bit,
         gradient checkpointing.
  ours   pipeline.train.trainer.build_trainer with jobs/configs/train_mistral7b_qlora_1gpu.yaml
         (plus --ours overrides): prompt-masked labels through TRL's fused LM head, length-grouped
         micro-batches of 8, fused AdamW, gradient checkpointing.

Prints, per variant: non-padding tokens per second over the timed steps (after --warmup steps),
peak GPU memory (allocated and reserved) and the last loss; writes them as JSON to --out.
--check runs both variants for a couple of steps on the CPU with the tiny model, 4-bit and 8-bit
optimizers off, to exercise everything but CUDA.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transformers import TrainerCallback  # noqa: E402

from pipeline.config import load_config  # noqa: E402

from pipeline.train.config import TrainConfig  # noqa: E402

PLAIN_BATCH = 4
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True, help="jobs.prepare output made with a Mistral v3 tokenizer")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per variant (timed after --warmup)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (CUDA/cuBLAS warm-up)")
    p.add_argument("--model-dir", default=None, help="random-weight model folder, built when missing "
                   "(default /tmp/complyray-bench/mistral7b-random, or tiny-mistral with --check)")
    p.add_argument("--config", default=str(ROOT / "jobs/configs/train_mistral7b_qlora_1gpu.yaml"),
                   help="the training config 'ours' runs")
    p.add_argument("--ours", nargs="*", default=[], help="dotted overrides for 'ours', e.g. train.micro_batch_size=16")
    p.add_argument("--variants", default="plain,ours", help="comma-separated: plain, ours")
    p.add_argument("--limit", type=int, default=None, help="use the first N training rows")
    p.add_argument("--out", default="/tmp/complyray-bench/bench_train.json", help="JSON results")
    p.add_argument("--check", action="store_true", help="CPU smoke run with the tiny model (no timing claims)")
    return p.parse_args(argv)


class StepClock(TrainerCallback):
    """Times optimizer steps after `warmup` (CUDA-synchronised) and counts the trainer's non-padding
    input tokens over the same steps; identical for both variants."""

    def __init__(self, warmup: int):
        self.warmup, self.seconds, self.tokens0, self.tokens = warmup, 0.0, None, 0
        self.last_loss = None

    def _sync(self):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        if state.global_step == self.warmup:
            self.tokens0 = state.num_input_tokens_seen
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        if state.global_step > self.warmup:
            self.seconds += time.perf_counter() - self._t0
            self.tokens = state.num_input_tokens_seen - self.tokens0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_loss = logs["loss"]


def ensure_model(model_dir: str, check: bool) -> str:
    """The random-weight model folder: the tiny Mistral for --check, else Mistral-7B in bf16."""
    from pipeline.testing import save_random_mistral

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        print(f"building a random {'tiny' if check else '7B'} Mistral in {path} (once)", flush=True)
        save_random_mistral(path, "tiny" if check else "7b", dtype="float32" if check else "bfloat16")
    return str(path)


def load_rows(prepared: str, tokenizer, limit: int | None):
    """(ours_train, ours_eval, plain_train): the same rows, with prompt-masked labels for ours and
    bare input_ids for the plain recipe (its collator makes labels = input_ids)."""
    from pipeline.train.data import check_tokenizer, load_datasets, read_manifest

    check_tokenizer(read_manifest(prepared), tokenizer, "--model-dir")
    max_len = read_manifest(prepared)["tokenizer"]["max_seq_len"]
    train, val = load_datasets(prepared, limit, 8, max_len, tokenizer.eos_token_id)
    return train, val, train.select_columns(["input_ids"])


def ours_config(args, model_dir: str) -> TrainConfig:
    never = 10**9  # no evaluation or checkpoint inside the timed window
    overrides = [f"model.name_or_path={model_dir}", f"data.prepared_dir={args.prepared}",
                 f"train.max_steps={args.steps + args.warmup}", f"train.eval_steps={never}",
                 f"train.save_steps={never}", "train.logging_steps=1", "train.early_stopping_patience=null",
                 "train.tensorboard=false", "ray.num_workers=1"]
    if args.check:
        overrides += ["quantization.load_in_4bit=false", "ray.use_gpu=false", "train.precision=fp32",
                      "train.optim=adamw_torch", "train.micro_batch_size=2"]
    return load_config(TrainConfig, args.config, overrides + args.ours)


def run_ours(args, model_dir, tokenizer, train, val, workdir: Path) -> dict:
    import torch

    from pipeline.train.trainer import build_trainer, resolve_precision

    cfg = ours_config(args, model_dir)
    clock = StepClock(args.warmup)
    device = torch.device("cuda", 0) if cfg.ray.use_gpu else None
    trainer = build_trainer(cfg, tokenizer, train, val, str(workdir / "ours"), precision=resolve_precision(cfg).precision,
                            callbacks=[clock], device=device, report_to=[])
    trainer.train()
    settings = {k: getattr(cfg.train, k) for k in ("micro_batch_size", "grad_accum", "packing", "sampling",
                                                   "attn_implementation", "gradient_checkpointing", "optim")}
    del trainer
    return {"clock": clock, "settings": settings}


def run_plain(args, model_dir, tokenizer, plain_train, workdir: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    gpu = not args.check
    kwargs = {"dtype": torch.bfloat16 if gpu else torch.float32}
    if gpu:
        kwargs.update(device_map={"": 0}, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16))
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if gpu:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    else:
        model.enable_input_require_grads()  # what prepare_model_for_kbit_training does for checkpointing
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS,
                                             task_type="CAUSAL_LM"))
    clock = StepClock(args.warmup)
    targs = TrainingArguments(
        output_dir=str(workdir / "plain"), per_device_train_batch_size=PLAIN_BATCH if gpu else 2,
        gradient_accumulation_steps=1, learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.03,
        max_steps=args.steps + args.warmup, optim="paged_adamw_8bit" if gpu else "adamw_torch",
        gradient_checkpointing=True, bf16=gpu, use_cpu=not gpu, logging_steps=1, save_strategy="no",
        eval_strategy="no", report_to="none", include_num_input_tokens_seen="non_padding", seed=42,
        disable_tqdm=False)
    trainer = Trainer(model=model, args=targs, train_dataset=plain_train, callbacks=[clock],
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    trainer.train()
    del trainer, model
    return {"clock": clock, "settings": {"micro_batch_size": targs.per_device_train_batch_size,
                                         "optim": targs.optim, "gradient_checkpointing": True,
                                         "labels": "every token (no prompt masking)", "padding": "longest"}}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from pipeline.models import load_tokenizer

    if not args.check and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU, or pass --check for the CPU smoke run", file=sys.stderr)
        return 2
    default = "tiny-mistral" if args.check else "mistral7b-random"
    model_dir = ensure_model(args.model_dir or f"/tmp/complyray-bench/{default}", args.check)
    tokenizer = load_tokenizer(model_dir)
    train, val, plain_train = load_rows(args.prepared, tokenizer, args.limit)
    print(f"{len(train)} training rows, {sum(train['length']):,} tokens; {args.steps} timed steps after "
          f"{args.warmup} warm-up steps per variant", flush=True)
    workdir = Path(args.out).parent / "work"
    results = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        run = (run_ours(args, model_dir, tokenizer, train, val, workdir) if variant == "ours"
               else run_plain(args, model_dir, tokenizer, plain_train, workdir))
        clock = run.pop("clock")
        results[variant] = {
            "tokens_per_second": round(clock.tokens / clock.seconds, 1) if clock.seconds else None,
            "timed_tokens": clock.tokens, "timed_seconds": round(clock.seconds, 2), "last_loss": clock.last_loss,
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2) if torch.cuda.is_available() else None,
            **run["settings"]}
        gc.collect()
        print(f"{variant}: {json.dumps(results[variant])}", flush=True)
    if "plain" in results and "ours" in results and results["plain"]["tokens_per_second"]:
        p, o = results["plain"], results["ours"]
        results["speedup"] = round(o["tokens_per_second"] / p["tokens_per_second"], 2)
        mem = (f", peak memory {o['peak_allocated_gb']} vs {p['peak_allocated_gb']} GiB"
               if p["peak_allocated_gb"] is not None else "")
        print(f"ours/plain effective tokens/s: {results['speedup']}x{mem}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "device": torch.cuda.get_device_name(0)
                                          if torch.cuda.is_available() else "cpu", "results": results}, indent=2))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
