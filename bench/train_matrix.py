"""Run the production training configs end to end through `jobs/train.py` (Ray Train) for a few steps.

    python bench/train_matrix.py --model-dir /tmp/m7b --prepared /tmp/prep_m --steps 8      # GPU machine
    python bench/train_matrix.py --variants qlora,lora_bf16 --merge qlora ...

Each variant is the real job (`python -m jobs.train --config <config> ...`) in its own process, as
`ray job submit` would run it, with only the paths, the step budget and the worker count overridden;
the random-weight Mistral-7B (`--model-dir`, built once when missing) and data prepared with its v3
tokenizer (`--prepared`, prepared once when missing) stand in for the hub model. It prints one line
per variant: wall time, steps, eval_loss first -> last, tokens/s, peak GPU memory, and whether the
artifact's adapter (and merged model) loads with plain transformers + peft. Nothing here is timed
against a baseline: bench/bench_train.py does that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "qlora": ("jobs/configs/train_mistral7b_qlora_1gpu.yaml", []),
    "lora_bf16": ("jobs/configs/train_mistral7b_qlora_1gpu.yaml", ["quantization.load_in_4bit=false"]),
    "zero2": ("jobs/configs/train_mistral7b_zero2_lora.yaml", []),
    "zero3": ("jobs/configs/train_mistral7b_zero3_lora.yaml", []),
    "qlora_ddp": ("jobs/configs/train_mistral7b_qlora_ddp.yaml", []),
}


def ensure_inputs(model_dir: Path, prepared: Path) -> None:
    """Build the random 7B model and prepare the sample with its tokenizer, once each."""
    if not (model_dir / "config.json").is_file():
        from pipeline.testing import save_random_mistral

        t = time.time()
        save_random_mistral(model_dir, "7b", dtype="bfloat16")
        print(f"built random Mistral-7B in {model_dir} ({time.time() - t:.0f}s)", flush=True)
    if not (prepared / "_manifest.json").is_file():
        run([sys.executable, "-m", "jobs.prepare", "--config", "jobs/configs/prepare_sample.yaml",
             f"model.name_or_path={model_dir}", f"data.output_dir={prepared}"])


def run(cmd: list[str], log: Path | None = None) -> int:
    """Run `cmd` from the repository root; with `log`, the full output goes there and only errors and
    the job's summary lines are echoed."""
    print("$ " + " ".join(cmd), flush=True)
    if log is None:
        return subprocess.run(cmd, cwd=ROOT).returncode
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # type: ignore[union-attr]
            sink.write(line)
            if "Error" in line or "error:" in line or line.startswith(("trained", "artifact")):
                print(line, end="", flush=True)
        return proc.wait()


def check_artifact(out: Path, merged: bool) -> str:
    """'adapter ok' (+ 'merged ok') when plain transformers + peft load what the job wrote."""
    from peft import PeftConfig

    cfg = PeftConfig.from_pretrained(out)
    notes = [f"adapter ok (r={cfg.r}, {len(cfg.target_modules)} modules)"]
    if merged:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(out / "merged")
        size = sum(f.stat().st_size for f in (out / "merged").glob("*.safetensors")) / 2**30
        notes.append(f"merged ok ({size:.1f} GiB safetensors)")
    return ", ".join(notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="/tmp/m7b")
    ap.add_argument("--prepared", default="/tmp/prep_m")
    ap.add_argument("--work", default="/tmp/train_matrix", help="storage_path and artifacts go here")
    ap.add_argument("--variants", default="qlora,lora_bf16,zero2,zero3")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--merge", default="", help="variants that also write the merged bf16 model")
    ap.add_argument("--logs", default=None, help="folder for each variant's full log")
    ap.add_argument("--json", default=None, help="write the table here")
    args = ap.parse_args()
    model_dir, prepared, work = Path(args.model_dir), Path(args.prepared), Path(args.work)
    ensure_inputs(model_dir, prepared)
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    half = max(1, args.steps // 2)
    rows = []
    for name in args.variants.split(","):
        config, extra = VARIANTS[name]
        out = work / "out" / name
        merged = name in args.merge.split(",")
        cmd = [sys.executable, "-m", "jobs.train", "--config", config, f"model.name_or_path={model_dir}",
               f"data.prepared_dir={prepared}", "data.eval_limit=32", f"ray.storage_path={work / 'ray'}",
               f"ray.run_name={name}", f"output_dir={out}", f"ray.num_workers={args.workers}",
               f"train.max_steps={args.steps}", f"train.eval_steps={half}", f"train.save_steps={half}",
               "train.logging_steps=2", "ray.max_failures=0", f"train.merge_adapter={str(merged).lower()}",
               *extra]
        t = time.time()
        rc = run(cmd, Path(args.logs) / f"{name}.log" if args.logs else None)
        row = {"variant": name, "config": config, "extra": extra, "rc": rc, "wall_s": round(time.time() - t, 1)}
        if rc == 0:
            m = json.loads((out / "metrics.json").read_text())
            row.update({k: m.get(k) for k in ("global_step", "effective_batch", "eval_loss_first", "eval_loss_last",
                                             "tokens_per_second", "peak_gpu_memory_gb")})
            try:
                row["artifact"] = check_artifact(out, merged)
            except Exception as e:  # noqa: BLE001 - reported in the table, the other variants still run
                row["artifact"] = f"FAILED: {type(e).__name__}: {e}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'variant':<10} {'rc':>3} {'wall s':>7} {'steps':>5} {'eval_loss':>16} {'tok/s':>8} {'peak GiB':>8}  artifact")
    for r in rows:
        loss = f"{r.get('eval_loss_first')} -> {r.get('eval_loss_last')}" if r["rc"] == 0 else "-"
        print(f"{r['variant']:<10} {r['rc']:>3} {r['wall_s']:>7} {r.get('global_step', '-')!s:>5} {loss:>16} "
              f"{r.get('tokens_per_second', '-')!s:>8} {r.get('peak_gpu_memory_gb', '-')!s:>8}  {r.get('artifact', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    sys.exit(0 if all(r["rc"] == 0 for r in rows) else 1)


if __name__ == "__main__":
    main()
