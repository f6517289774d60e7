"""Preparation throughput and peak memory: the Ray Data job against the original plan's loop.

    python bench/bench_prepare.py --records 1000000 --small 100000

Generates synthetic input once (records/2 pairs, sharded), then runs, each in its own process tree
sampled every second for memory (PSS, summed over the tree, so Ray's shared object store is counted
once): (1) the plan's single-process loop, (2) that loop plus tokenisation (the same work as ours),
(3) `python -m jobs.prepare` on a local Ray. Both sizes are run so memory growth is visible.
"""

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def tree_pss(root: psutil.Process) -> int:
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(cmd: list[str], env: dict | None = None, limit_gib: float | None = None) -> tuple[float, int, str]:
    """Run `cmd`; return (seconds, peak PSS of its process tree in bytes, its output).

    `limit_gib` caps the address space so a run that would exhaust the machine fails by itself.
    Raises RuntimeError when the command fails.
    """
    def cap():
        if limit_gib:
            resource.setrlimit(resource.RLIMIT_AS, (int(limit_gib * 2**30),) * 2)

    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=cap)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        ps = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak = max(peak, tree_pss(ps))
            except psutil.NoSuchProcess:
                break
            done.wait(3.0)  # reading smaps costs CPU on a 2-core machine: sample sparingly

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{out[-3000:]}")
    return time.time() - start, peak, out


def make_input(folder: Path, records: int, shards: int = 8) -> None:
    marker = folder.with_suffix(".done")
    if marker.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    pairs = records // 2
    per = -(-pairs // shards)
    code = ("import sys; from pipeline.synth import write_jsonl; "
            "k, per, n = map(int, sys.argv[1:4]); write_jsonl(f'{sys.argv[4]}/part{k:02d}.jsonl', min(per, n - k*per), "
            "seed=11, start=k*per)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(per), str(pairs), str(folder)], cwd=ROOT)
             for k in range(shards) if k * per < pairs]
    assert all(p.wait() == 0 for p in procs)
    marker.touch()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000, help="a second, smaller size to show memory growth")
    ap.add_argument("--workdir", default="/tmp/complyray-bench-prepare")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--plain-limit-gib", type=float, default=20.0,
                    help="address-space cap for the single-process baselines (they hold everything in memory)")
    args = ap.parse_args()
    from pipeline.models import ensure_embedded_model

    model = str(ensure_embedded_model())
    work = Path(args.workdir)
    rows = []
    for n in sorted({args.small, args.records}):
        data = work / f"input-{n}"
        make_input(data, n)
        runs = [] if args.skip_plain else [
            ("plan loop (no tokenisation)", [sys.executable, "bench/plain_prepare.py", "--input", str(data),
                                             "--out", str(work / f"plain-{n}")]),
            ("plan loop + tokenisation", [sys.executable, "bench/plain_prepare.py", "--input", str(data),
                                          "--out", str(work / f"plaintok-{n}"), "--tokenize", model]),
        ]
        runs.append(("complyray Ray Data job", [sys.executable, "-m", "jobs.prepare", f"data.paths=[{data}]",
                                                f"data.output_dir={work / f'ray-{n}'}", "data.max_seq_len=4096"]))
        for name, cmd in runs:
            limit = None if cmd[1] == "-m" else args.plain_limit_gib
            try:
                seconds, peak, _ = measure(cmd, {"TOKENIZERS_PARALLELISM": "true"}, limit)
            except RuntimeError as e:
                print(f"{n:>9,} records  {name:<30} FAILED under a {limit} GiB address-space cap: "
                      f"{str(e).strip().splitlines()[-1][:120]}", flush=True)
                continue
            rows.append((n, name, seconds, n / seconds, peak / 2**30))
            print(f"{n:>9,} records  {name:<30} {seconds:8.1f} s  {n / seconds:9,.0f} records/s  "
                  f"peak {peak / 2**30:6.2f} GiB", flush=True)
    print(f"\nmachine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB")


if __name__ == "__main__":
    main()
