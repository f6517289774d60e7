"""Streaming archive scoring: messages/s and peak memory of the real job at two archive sizes.

    python bench/bench_score_stream.py --messages 20000 200000
    python bench/bench_score_stream.py --messages 2000          # a quick check
    python bench/bench_score_stream.py ray.num_cpus=3 cpus_per_actor=2 --messages 4000   # job overrides first

Generates a synthetic archive per size (realistic length mix: mostly short chats and texts, some
emails, a few long call transcripts, and some mass-mailed duplicates), builds the tiny random Mistral
of the tests, and runs `python -m jobs.score` on its own local Ray (ray.num_cpus = this machine's
CPUs). The job's process tree (driver, raylet, Ray Data and engine workers) is sampled every
`--every` seconds: peak RSS summed over the tree and peak PSS (Ray's shared object store counted
once). Memory that does not grow from the small to the large size is what streaming promises.
Throughput is read / the job's own seconds (model load included). Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# (share, min chars, max chars): chats and texts, emails, call transcripts.
LENGTH_MIX = [(0.80, 40, 300), (0.19, 600, 4000), (0.01, 8000, 40000)]  # shares sum to 1
DUPLICATE_SHARE = 0.03  # one email sent to many clients
PHRASES = ["I guarantee this fund will not lose money.", "Returns are not guaranteed; you could lose capital.",
           "Let's move this to my personal phone.", "Can you confirm the transfer for Friday?",
           "The prospectus lists the fees on page four.", "Trust me, it only goes up from here.",
           "Please review the attached risk disclosure.", "I'll waive the suitability form this once."]


def message(rng: random.Random, i: int) -> str:
    r, acc = rng.random(), 0.0
    lo, hi = LENGTH_MIX[-1][1:]
    for share, a, b in LENGTH_MIX:
        acc += share
        if r < acc:
            lo, hi = a, b
            break
    target, parts = rng.randint(lo, hi), [f"[{i}]"]
    while sum(map(len, parts)) < target:
        parts.append(f"{rng.choice(['Advisor', 'Client'])}: {rng.choice(PHRASES)} (ref {rng.randint(0, 10**6)})\n")
    return "".join(parts)[:hi]


def make_archive(folder: Path, n: int, files: int = 8, seed: int = 16) -> None:
    done = folder.with_suffix(".done")
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    mass = [message(rng, -k) for k in range(20)]
    outs = [open(folder / f"part{k:02d}.jsonl", "w") for k in range(files)]
    for i in range(n):
        text = rng.choice(mass) if rng.random() < DUPLICATE_SHARE else message(rng, i)
        outs[i % files].write(json.dumps({"id": f"c{i}", "text": text}) + "\n")
    for f in outs:
        f.close()
    done.touch()


def tree_memory(root: psutil.Process, pss: bool) -> tuple[int, int]:
    """(summed RSS, summed PSS or 0) over `root` and its descendants."""
    rss = shared = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            if pss:
                info = p.memory_full_info()
                rss, shared = rss + info.rss, shared + info.pss
            else:
                rss += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, shared


def role(p: psutil.Process) -> str:
    """A process of the job's tree by what it does: the driver, raylet, GCS, an engine actor, a Ray Data worker."""
    cmd = " ".join(p.cmdline())
    for needle, name in (("jobs.score", "driver"), ("raylet", "raylet"), ("gcs_server", "gcs"),
                         ("EngineActor", "engine"), ("log_monitor", "log_monitor"), ("monitor.py", "monitor"),
                         ("dashboard", "dashboard"), ("runtime_env", "runtime_env_agent")):
        if needle in cmd:
            return name
    return p.name() if not cmd.startswith("ray::") else cmd.split()[0]


def process_memory(pid: int) -> dict:
    """RSS split into anonymous / file / shared memory (the object store is shared memory), and PSS, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1]) * 1024
    return out


def run_job(archive: Path, out: Path, model: Path, every: float, extra: list[str], trace: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, part of its tree
    cmd = [sys.executable, "-m", "jobs.score", "--config", "jobs/configs/score_archive.yaml", f"paths=[{archive}]",
           f"output_dir={out}", f"model.name_or_path={model}", "restart=true", f"ray.num_cpus={os.cpu_count()}",
           *extra]
    start = time.time()
    output_log = out.with_suffix(".log")  # the job's own output, readable while it runs
    with open(output_log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
    peak = {"rss": 0, "pss": 0}
    stop = threading.Event()

    log = open(trace, "w") if trace else None

    def sample():
        ps = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss, pss = tree_memory(ps, pss=True)
            except psutil.NoSuchProcess:
                break
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            if log is not None:  # one JSON line per sample: every process of the tree, by role
                procs = []
                for p in [ps, *ps.children(recursive=True)]:
                    try:
                        procs.append({"pid": p.pid, "role": role(p), **process_memory(p.pid)})
                    except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError, ProcessLookupError):
                        pass
                log.write(json.dumps({"t": round(time.time() - start, 1), "procs": procs}) + "\n")
                log.flush()
            stop.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    output = output_log.read_text()
    stop.set()
    sampler.join()
    if log is not None:
        log.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-4000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"messages": summary["read"], "scored": summary["scored"], "duplicates": summary["duplicates"],
            "rejected": summary["rejected"], "flagged": summary["flagged"], "chunked": summary["chunked"],
            "job_seconds": summary["seconds"], "wall_seconds": round(time.time() - start, 1),
            "messages_per_s": round(summary["read"] / summary["seconds"], 1),
            "peak_rss_gib": round(peak["rss"] / 2**30, 2), "peak_pss_gib": round(peak["pss"] / 2**30, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--workdir", default="/tmp/complyray-bench-score")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between memory samples")
    ap.add_argument("--save", help="also write the results as JSON here")
    ap.add_argument("--trace", action="store_true",
                    help="write every process's memory (RSS: anonymous / file / shared; PSS) per sample to "
                         "<workdir>/trace-<n>.jsonl, to see which process grows")
    ap.add_argument("overrides", nargs="*", help="extra job overrides, e.g. threshold=0.4 engine.batch_size=16")
    args = ap.parse_args()
    from pipeline.testing import save_random_mistral

    work = Path(args.workdir)
    model = work / "tiny-mistral"
    if not (model / "config.json").exists():
        save_random_mistral(model, "tiny")
    results = []
    for n in sorted(args.messages):
        archive = work / f"archive-{n}"
        make_archive(archive, n)
        r = run_job(archive, work / f"out-{n}", model, args.every, args.overrides,
                    work / f"trace-{n}.jsonl" if args.trace else None)
        results.append(r)
        print(f"{n:>9,} messages  {r['messages_per_s']:8,.1f} msg/s  job {r['job_seconds']:7.1f} s  "
              f"peak RSS {r['peak_rss_gib']:5.2f} GiB  PSS {r['peak_pss_gib']:5.2f} GiB  "
              f"(scored {r['scored']:,}, duplicates {r['duplicates']:,}, flagged {r['flagged']:,}, "
              f"in windows {r['chunked']:,})", flush=True)
    machine = {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30)}
    print(f"machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB")
    if args.save:
        Path(args.save).write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
