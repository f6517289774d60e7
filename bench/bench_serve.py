"""Load benchmark of the Serve application: throughput and latency under concurrent clients, and what
dynamic batching buys over batch-size-1 serving.

    python bench/bench_serve.py --preset 7b            # GPU machine: random-weight Mistral-7B architecture, bf16
    python bench/bench_serve.py --endpoints score      # CPU: the embedded SmolLM2-135M, /v1/score only
    python bench/bench_serve.py --endpoints analyze --analyze-requests 16 --concurrency 16

On a shared 2-core CPU a full default run takes far more than 10 minutes (one 350-token prompt costs
seconds there): run the endpoints separately, with few requests, as above.

The application is deployed once per serving mode (max_batch_size=1, then --batch-size) on a local Ray;
for each endpoint and concurrency level a separate client process (one thread per client, real HTTP)
sends a fixed number of requests, each a different synthetic communication. Reported: requests/s,
latency p50/p95/p99, non-200 counts, the mean batch size the replica reported, and the throughput gain
of batching. Queue limits are set high enough that nothing is rejected: this measures capacity, not
backpressure (tests/test_serve.py covers the 503s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- client process ---------------------------------------------------------------------------------------
def run_client(url: str, endpoint: str, concurrency: int, n: int, seed: int) -> dict:
    """`n` requests from `concurrency` threads; per-request latency, status and reported batch size."""
    import requests

    from pipeline.synth import generate_items

    texts = [it[k]["scenario"] for it in generate_items((n + 1) // 2, seed=seed)
             for k in ("compliant_version", "non_compliant_version")][:n]
    path = {"score": "/v1/score", "analyze": "/v1/analyze"}[endpoint]
    lock, next_i, rows = threading.Lock(), [0], []

    def worker():
        session = requests.Session()
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n:
                return
            t0 = time.perf_counter()
            try:
                r = session.post(url + path, json={"text": texts[i]}, timeout=1800)
                body = r.json() if r.status_code == 200 else {}
                status = r.status_code
            except requests.RequestException:
                body, status = {}, -1
            batch = (body.get("results") or [body])[0].get("batch_size") if body else None
            with lock:
                rows.append((time.perf_counter() - t0, status, batch))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - t0, "rows": rows}


# -- driver -----------------------------------------------------------------------------------------------
def app_args(preset: str, model: str, batch_size: int, new_tokens: int) -> dict:
    cpu = preset == "embedded"
    return {
        "model": {"name_or_path": model},
        "engine": {"device": "cpu" if cpu else "cuda", "dtype": "auto" if cpu else "bfloat16",
                   "max_new_tokens": new_tokens, "batch_size": max(batch_size, 1)},
        "batching": {"max_batch_size": batch_size, "batch_wait_timeout_s": 0.05 if cpu else 0.02},
        "detector": {"num_replicas": 1, "max_ongoing_requests": max(2 * batch_size, 4), "max_queued_requests": -1,
                     "num_cpus": 2 if cpu else 8, "num_gpus": 0 if cpu else 1},
        "limits": {"max_prompt_tokens": 4096, "max_chars": 20000},
    }


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def measure(url: str, endpoint: str, concurrency: int, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--client", url, endpoint, str(concurrency), str(n)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    ok = [lat for lat, status, _ in res["rows"] if status == 200]
    batches = [b for _, status, b in res["rows"] if status == 200 and b]
    return {"requests": n, "ok": len(ok), "errors": n - len(ok), "seconds": res["seconds"],
            "rps": len(ok) / res["seconds"], "p50": percentile(ok, 50), "p95": percentile(ok, 95),
            "p99": percentile(ok, 99), "mean_batch": sum(batches) / len(batches) if batches else float("nan")}


def engine_baseline(preset: str, model: str, batch: int, new_tokens: int, n: int) -> None:
    """The engine alone, in this process (no Serve): model time per communication at batch 1 and `batch`."""
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector
    from pipeline.synth import generate_items

    args = app_args(preset, model, batch, new_tokens)
    detector = Detector(DetectorModelConfig(**args["model"]), EngineConfig(**args["engine"]))
    texts = [it["non_compliant_version"]["scenario"] for it in generate_items(n, seed=11)]
    detector.score(detector.encode_prompts(texts[:2]))  # warm-up
    for size in (1, batch):
        for name, run in (("score", detector.score), ("generate", detector.generate)):
            chunk = texts[:max(size, min(n, 4 * size))] if size > 1 else texts[:4]
            t0 = time.perf_counter()
            for i in range(0, len(chunk), size):
                run(detector.encode_prompts(chunk[i:i + size]))  # encoding counted, as a request's
            per = (time.perf_counter() - t0) / len(chunk)
            print(f"engine only  {name:8} batch {size:<3} {per * 1000:8.1f} ms per communication "
                  f"({1 / per:.1f}/s)", flush=True)
    del detector
    _free_accelerator_memory()


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def prepare_model(preset: str) -> str:
    from pipeline.models import ensure_embedded_model
    from pipeline.testing import save_random_mistral

    if preset == "embedded":
        return str(ensure_embedded_model())
    folder = Path("/tmp/complyray-bench/mistral-7b-random")
    if not (folder / "config.json").is_file():
        print(f"writing a random Mistral-7B (bf16) to {folder} ...", flush=True)
        save_random_mistral(folder, "7b", dtype="bfloat16")
    return str(folder)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, endpoint, concurrency, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(run_client(url, endpoint, concurrency, n, seed=11)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["embedded", "7b"], default="embedded")
    ap.add_argument("--concurrency", default="16,64", help="client counts, comma separated")
    ap.add_argument("--requests", type=int, help="/v1/score requests per run (default: 64 on CPU, 512 on GPU)")
    ap.add_argument("--analyze-requests", type=int, help="/v1/analyze requests per run (default 16 CPU, 128 GPU)")
    ap.add_argument("--endpoints", default="score,analyze")
    ap.add_argument("--batch-size", type=int, help="dynamic batching's max_batch_size (default 16 CPU, 64 GPU)")
    ap.add_argument("--modes", help="max_batch_size values to deploy, comma separated (default: 1,--batch-size)")
    ap.add_argument("--new-tokens", type=int, help="analyze's max_new_tokens (default 16 CPU, 32 GPU)")
    ap.add_argument("--port", type=int, default=8311)
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--engine-baseline", action="store_true", help="first time the engine alone (no Serve)")
    args = ap.parse_args()
    cpu = args.preset == "embedded"
    n = {"score": args.requests or (64 if cpu else 512), "analyze": args.analyze_requests or (16 if cpu else 128)}
    batch = args.batch_size or (16 if cpu else 64)
    modes = [int(m) for m in args.modes.split(",")] if args.modes else [1, batch]
    new_tokens = args.new_tokens or (16 if cpu else 32)
    levels = [int(c) for c in args.concurrency.split(",")]
    endpoints = args.endpoints.split(",")

    import ray
    from ray import serve

    from serve.app import build_app

    model = prepare_model(args.preset)
    if args.engine_baseline:
        engine_baseline(args.preset, model, batch, new_tokens, n["analyze"])
    ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    url = f"http://127.0.0.1:{args.port}"
    results = []
    t_start = time.time()
    for mode in modes:
        serve.run(build_app(app_args(args.preset, model, mode, new_tokens)), name="bench", route_prefix="/")
        for endpoint in endpoints:
            measure(url, endpoint, 4, 4)  # warm-up: first calls pay one-off costs
            for c in levels:
                r = {"max_batch_size": mode, "endpoint": endpoint, "clients": c,
                     **measure(url, endpoint, c, n[endpoint])}
                results.append(r)
                print(f"batch<={mode:<3} {endpoint:8} clients={c:<3} {r['rps']:7.2f} req/s  p50 {r['p50']:6.2f}s  "
                      f"p95 {r['p95']:6.2f}s  p99 {r['p99']:6.2f}s  errors {r['errors']}  mean batch "
                      f"{r['mean_batch']:.1f}  ({time.time() - t_start:.0f}s elapsed)", flush=True)
        serve.delete("bench")
    serve.shutdown()

    print(f"\n{args.preset} model on {'CPU' if cpu else 'GPU'}; requests per run: {n}; analyze max_new_tokens="
          f"{new_tokens}; gain = req/s over max_batch_size=1 at the same endpoint and clients\n")
    print("| endpoint | clients | max_batch_size | req/s | p50 s | p95 s | p99 s | errors | mean batch | gain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = {(r["endpoint"], r["clients"]): r["rps"] for r in results if r["max_batch_size"] == 1}
    for r in sorted(results, key=lambda r: (r["endpoint"], r["clients"], r["max_batch_size"])):
        key = (r["endpoint"], r["clients"])
        gain = r["rps"] / base[key] if key in base else float("nan")
        print(f"| {r['endpoint']} | {r['clients']} | {r['max_batch_size']} | {r['rps']:.2f} | {r['p50']:.2f} | "
              f"{r['p95']:.2f} | {r['p99']:.2f} | {r['errors']} | {r['mean_batch']:.1f} | {gain:.2f}x |")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "requests": n, "new_tokens": new_tokens,
                                              "results": results}, indent=2))


if __name__ == "__main__":
    main()
