"""Fine-tuning across the GPUs of one host: DDP QLoRA, ZeRO-2/3 LoRA, a stop-and-resubmit resume, scaling.

    python bench/bench_multigpu.py --json $OUT/multigpu.json                  # nvidia-h200-x2: the full plan
    python bench/bench_multigpu.py --runs qlora:1,qlora:2 --steps 12          # scaling only

Starts one `ray start --head` on this machine (as a one-machine cluster would run) and runs every entry of
`--runs` as the real job, `python -m jobs.train --config <shipped config>`, a driver of that cluster, with
only the paths, the step budget and `ray.num_workers` overridden. `NAME:N` is config NAME on N workers, one
GPU each; `resume:N` is the QLoRA DDP config on N workers, killed (driver and all its workers, as
`ray job stop` does) once Ray Train has registered its first checkpoint, then submitted again under the
same run name: it must continue from that step and end at the uninterrupted `qlora:N` run's step count,
with the same losses after the resume point (optimizer, scheduler, RNG and data position restored).

The model is the Mistral-7B-v0.3 architecture with random weights and the real v3 tokenizer (built once
in `--model-dir`), the data the prepared sample (prepared once with that tokenizer). Reported per run:
effective (non-padding) tokens/s in total and per GPU, scaling efficiency against the 1-worker run of the
same config (per-GPU tokens/s at N over tokens/s at 1), peak memory allocated on each GPU, checkpoint
size, save time (the trainer writing it) and report time (Ray Train copying it to storage).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from train_matrix import ensure_inputs  # noqa: E402 - the random 7B and its prepared data, built once

from pipeline.testing import ray_cli, stop_ray_head  # noqa: E402

RAY_CMD = ray_cli()
# --cpu: the same driver, kill and resubmission logic on CPU workers with the tiny model (no figures).
CPU_SMOKE = ["ray.use_gpu=false", "quantization.load_in_4bit=false", "train.precision=fp32",
             "train.optim=adamw_torch", "train.micro_batch_size=2"]
CONFIGS = {
    "qlora": "jobs/configs/train_mistral7b_qlora_ddp.yaml",
    "zero2": "jobs/configs/train_mistral7b_zero2_lora.yaml",
    "zero3": "jobs/configs/train_mistral7b_zero3_lora.yaml",
    "resume": "jobs/configs/train_mistral7b_qlora_ddp.yaml",
}


def job_command(config: str, name: str, workers: int, args, work: Path) -> list[str]:
    half = max(1, args.steps // 2)
    return [sys.executable, "-m", "jobs.train", "--config", config, f"model.name_or_path={args.model_dir}",
            f"data.prepared_dir={args.prepared}", f"data.eval_limit={args.eval_limit}",
            f"ray.storage_path={work / 'ray'}", f"ray.run_name={name}", f"output_dir={work / 'out' / name}",
            f"ray.num_workers={workers}",
            f"ray.resources_per_worker={{CPU: {args.cpus_per_worker}, GPU: {0 if args.cpu else 1}}}",
            f"train.max_steps={args.steps}", f"train.eval_steps={half}", f"train.save_steps={half}",
            "train.logging_steps=1", "train.early_stopping_patience=null", "train.calibration=none",
            "ray.max_failures=0", *(CPU_SMOKE if args.cpu else [])]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    print("$ " + " ".join(cmd[1:]), flush=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def registered_checkpoint(run_dir: Path) -> bool:
    """True once Ray Train's checkpoint manager has recorded a checkpoint in storage (what a resubmission reads)."""
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    try:
        state = json.loads(snapshot.read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("latest_checkpoint_result"))


def stop(proc: subprocess.Popen) -> None:
    """Kill the driver's whole process group; Ray then ends the job's trainer and workers."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for_free_gpus(timeout: float = 120.0) -> None:
    import ray

    deadline = time.time() + timeout
    while time.time() < deadline:
        if ray.available_resources().get("GPU", 0) >= ray.cluster_resources().get("GPU", 0):
            return
        time.sleep(1)
    raise RuntimeError("the killed job's workers still hold GPUs")


def checkpoint_files(run_dir: Path) -> dict:
    """The newest checkpoint in storage: {relative path: MiB} of its files of 1 MiB or more."""
    ckpts = sorted((p for p in run_dir.glob("checkpoint_*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not ckpts:
        return {}
    return {str(f.relative_to(ckpts[-1])): round(f.stat().st_size / 2**20, 1)
            for f in sorted(ckpts[-1].rglob("*")) if f.is_file() and f.stat().st_size >= 2**20}


def summary(name: str, config: str, workers: int, out: Path, wall: float, rc: int) -> dict:
    row = {"run": name, "config": config, "workers": workers, "rc": rc, "wall_s": round(wall, 1)}
    if rc != 0:
        return row
    m = json.loads((out / "metrics.json").read_text())
    ckpts = m.get("checkpoints") or []
    row.update({
        "global_step": m["global_step"], "resumed_from_step": m["resumed_from_step"],
        "effective_batch": m["effective_batch"], "tokens_per_second": m["tokens_per_second"],
        "tokens_per_second_per_gpu": m["tokens_per_second_per_worker"],
        "steady_tokens_per_second": m["steady_tokens_per_second"],
        "steady_tokens_per_second_per_gpu": m["steady_tokens_per_second_per_worker"],
        "step_tokens_per_second": [e.get("tokens_per_second") for e in m["train_losses"]],
        "checkpoint_files": checkpoint_files(out.parent.parent / "ray" / name),
        "peak_gpu_memory_gb_per_gpu": m["peak_gpu_memory_gb_per_worker"],
        "eval_loss_first": m["eval_loss_first"], "eval_loss_last": m["eval_loss_last"],
        "checkpoint_gib": round(max((c["bytes"] or 0) for c in ckpts) / 2**30, 3) if ckpts else None,
        "save_s": max((c["save_seconds"] or 0) for c in ckpts) if ckpts else None,
        "report_s": max(c["report_seconds"] for c in ckpts) if ckpts else None,
        "train_losses": [(e["step"], e["loss"]) for e in m["train_losses"]],
    })
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="qlora:1,qlora:2,resume:2,zero3:2,zero2:2")
    ap.add_argument("--model-dir", default="/tmp/m7b")
    ap.add_argument("--prepared", default="/tmp/prep_m")
    ap.add_argument("--work", default=None, help="storage, artifacts and logs (default: a fresh temp folder)")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per run; checkpoints at half and end")
    ap.add_argument("--eval-limit", type=int, default=16)
    ap.add_argument("--cpus-per-worker", type=int, default=4)
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--port", type=int, default=6389, help="the head's GCS port")
    ap.add_argument("--cpu", action="store_true", help="smoke-run the QLoRA entries on CPU workers, tiny model")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="multigpu-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    if args.cpu and not (Path(args.model_dir) / "config.json").is_file():
        from pipeline.testing import save_random_mistral

        save_random_mistral(args.model_dir, "tiny")
    ensure_inputs(Path(args.model_dir), Path(args.prepared))
    # `ray start --head` enforces token auth on local clusters since Ray 2.59: clients say so too.
    os.environ.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([*RAY_CMD, "get-auth-token", "--generate"], check=True, capture_output=True)
    temp_dir = tempfile.mkdtemp(prefix="mgpu-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    started = subprocess.run([*RAY_CMD, "start", "--head", f"--port={args.port}", f"--temp-dir={temp_dir}",
                              "--include-dashboard=false", "--disable-usage-stats"], capture_output=True, text=True)
    if started.returncode != 0:
        stop_ray_head(temp_dir)
        sys.exit(started.stdout + started.stderr)
    os.environ["RAY_ADDRESS"] = f"127.0.0.1:{args.port}"  # every job below is a driver of this cluster
    import ray

    ray.init(logging_level="ERROR", log_to_driver=False)
    rows = []
    try:
        for entry in args.runs.split(","):
            name, n = entry.split(":")
            workers, config = int(n), CONFIGS[name]
            run = f"{name}-{workers}"
            cmd = job_command(config, run, workers, args, work)
            t = time.time()
            if name == "resume":
                proc = start(cmd, work / "logs" / f"{run}-first.log")
                while proc.poll() is None and not registered_checkpoint(work / "ray" / run):
                    time.sleep(1)
                if proc.poll() is None:
                    stop(proc)
                    print(f"stopped {run} after its first checkpoint ({time.time() - t:.0f}s)", flush=True)
                wait_for_free_gpus()
            proc = start(cmd, work / "logs" / f"{run}.log")
            rc = proc.wait()
            row = summary(run, config, workers, work / "out" / run, time.time() - t, rc)
            rows.append(row)
            if rc != 0:
                print((work / "logs" / f"{run}.log").read_text()[-3000:], flush=True)
            print(json.dumps({k: v for k, v in row.items() if k != "train_losses"}), flush=True)
    finally:
        ray.shutdown()
        stop_ray_head(temp_dir)  # this head only: other clusters on the machine keep running
    report(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    sys.exit(0 if all(r["rc"] == 0 for r in rows) else 1)


def report(rows: list[dict]) -> None:
    # Scaling compares steady figures (the first step, warm-up, left out of both runs).
    single = {r["config"]: r["steady_tokens_per_second"] for r in rows if r["rc"] == 0 and r["workers"] == 1}
    print(f"\n{'run':<10} {'rc':>3} {'steps':>5} {'from':>4} {'tok/s':>8} {'steady':>8} {'steady/GPU':>10} "
          f"{'scaling':>7} {'peak GiB per GPU':>18} {'ckpt GiB':>8} {'save s':>6} {'report s':>8} {'wall s':>7}")
    for r in rows:
        if r["rc"] != 0:
            print(f"{r['run']:<10} {r['rc']:>3}  failed")
            continue
        base = single.get(r["config"])
        scaling = f"{r['steady_tokens_per_second_per_gpu'] / base:.0%}" if base and r["workers"] > 1 else "-"
        peaks = "/".join(f"{p:.1f}" for p in r["peak_gpu_memory_gb_per_gpu"] if p is not None)
        print(f"{r['run']:<10} {r['rc']:>3} {r['global_step']:>5} {r['resumed_from_step'] or '-'!s:>4} "
              f"{r['tokens_per_second']:>8,.0f} {r['steady_tokens_per_second'] or 0:>8,.0f} "
              f"{r['steady_tokens_per_second_per_gpu'] or 0:>10,.0f} {scaling:>7} {peaks:>18} "
              f"{r['checkpoint_gib']!s:>8} {r['save_s']!s:>6} {r['report_s']!s:>8} {r['wall_s']:>7}")
    by_run = {r["run"]: r for r in rows if r["rc"] == 0}
    for r in rows:
        ref = by_run.get(r["run"].replace("resume", "qlora"))
        if r["run"].startswith("resume") and r["rc"] == 0 and ref:
            start = r["resumed_from_step"] or 0
            after = {s: loss for s, loss in r["train_losses"] if s > start}
            diff = max((abs(after[s] - loss) for s, loss in ref["train_losses"] if s in after), default=None)
            same_end = r["global_step"] == ref["global_step"]
            print(f"{r['run']}: resumed from step {r['resumed_from_step']}, ended at {r['global_step']} "
                  f"({'same as' if same_end else 'NOT the same as'} the uninterrupted {ref['global_step']}); "
                  f"train loss after the resume differs from the uninterrupted run's by at most {diff}")


if __name__ == "__main__":
    main()
