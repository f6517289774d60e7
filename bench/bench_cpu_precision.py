"""CPU training and inference speed of the embedded model in fp32 vs bf16, side by side in one process.

    python bench/bench_cpu_precision.py                   # 1 thread (what a Ray worker with CPU: 1 gets)
    python bench/bench_cpu_precision.py --threads 2 --tokens 768

One LoRA training step (forward + backward, bf16 = autocast as the trainer runs it) and one forward pass
of SmolLM2-135M-Instruct on a demo-length sequence, for each precision, after a warm-up; also the choice
`precision: auto` makes on this CPU and why. On a CPU without native bf16 (AVX2 only) bf16 is emulated
and runs many times slower than fp32; with AVX512-BF16 or AMX it runs faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=768, help="sequence length (the demo's examples: ~500-900)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pipeline.models import ensure_embedded_model
    from pipeline.precision import cpu_bf16, cpu_precision

    torch.set_num_threads(args.threads)
    cpu, choice = cpu_bf16(), cpu_precision("auto")
    print(f"CPU capability {cpu.capability}, native bf16 {cpu.native}, probe bf16/fp32 speed "
          f"{cpu.speedup if cpu.speedup is None else round(cpu.speedup, 3)}; auto -> {choice.precision}")
    model = AutoModelForCausalLM.from_pretrained(str(ensure_embedded_model()), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    ids = torch.randint(0, model.config.vocab_size, (1, args.tokens))
    figures = {"capability": cpu.capability, "native_bf16": cpu.native, "auto": choice.precision,
               "threads": args.threads, "tokens": args.tokens}
    for name, autocast in (("fp32", contextlib.nullcontext), ("bf16", lambda: torch.autocast("cpu", torch.bfloat16))):
        def train_step():
            with autocast():
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            model.zero_grad(set_to_none=True)

        def forward():
            with torch.no_grad(), autocast():
                model(input_ids=ids)

        step, fwd = timed(train_step, args.repeats), timed(forward, args.repeats)
        figures[name] = {"train_tokens_per_s": args.tokens / step, "forward_tokens_per_s": args.tokens / fwd}
        print(f"{name}: training {args.tokens / step:8.1f} tokens/s ({step:6.2f} s/step)   "
              f"forward {args.tokens / fwd:8.1f} tokens/s", flush=True)
    print(f"bf16 / fp32 training speed: {figures['bf16']['train_tokens_per_s'] / figures['fp32']['train_tokens_per_s']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
