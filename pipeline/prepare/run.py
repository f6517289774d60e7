"""Orchestration of the preparation job: two Ray Data passes around the driver's split decisions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import config_to_dict
from pipeline.prepare.config import PrepareConfig
from pipeline.prepare.records import CODES, SplitPlan, file_labels, format_records, parse_lines, stamp_split
from pipeline.formatting import SYSTEM_PROMPT, resolve_system_role
from pipeline.artifacts import MANIFEST_NAME, write_json
from pipeline.prepare.manifest import REJECTS_NAME, build_manifest, write_rejects
from pipeline.outputs import absolute, remove_tree, staged_output
from pipeline.reader import JsonLinesSource, broken_links, check_inputs, file_event_table
from pipeline.shortcut_audit import shortcut_audit_from_prepared
from pipeline.prepare.splitting import UnionFind, assign_splits

log = logging.getLogger(__name__)

KEY_COLUMNS = ["id", "item_id", "file", "line", "detail", "version", "status", "reason", "source", "format", "compliance_topic",
               "final_verdict", "severity", "num_tokens", "prompt_tokens", "truncated", "rid", "exact_key",
               "near_key", "content_key"]


@dataclass
class PrepareResult:
    output_dir: str
    manifest: dict


def plan_splits(keys: pd.DataFrame, cfg: PrepareConfig) -> tuple[SplitPlan, pd.DataFrame]:
    """Decide duplicates, pair groups and splits from the key table (one row per record).

    Returns the broadcastable plan and the key table with `split` (and duplicate reasons) filled in.
    Raises RuntimeError on a 64-bit id hash collision (ids must be unique).
    """
    keys = keys.sort_values(["file", "item_id", "version"], kind="stable").reset_index(drop=True)
    if keys["rid"].duplicated().any():
        clash = keys.loc[keys["rid"].duplicated(keep=False), "id"].tolist()[:5]
        raise RuntimeError(f"record ids are not unique (same file read twice?): {clash}")
    keys["split"] = "rejected"
    keys["duplicate_of"] = ""
    ok = keys["status"] == "accepted"
    acc = keys[ok].copy()
    items, item_idx = np.unique(acc["item_id"].to_numpy(), return_inverse=True)
    acc["item_idx"] = item_idx
    uf = UnionFind(len(items))
    if cfg.data.dedup != "off":
        dedup_key = "near_key" if cfg.data.dedup == "near" else "exact_key"
        first = acc.groupby(dedup_key, sort=False).cumcount() > 0
        first_row = acc.groupby(dedup_key, sort=False)["id"].transform("first")
        first_exact = acc.groupby(dedup_key, sort=False)["exact_key"].transform("first")
        first_item = acc.groupby(dedup_key, sort=False)["item_idx"].transform("first")
        for a, b in zip(acc.loc[first, "item_idx"], first_item[first]):
            uf.union(int(a), int(b))  # the duplicate's pair partner stays with the original's pair
        dup_reason = np.where(acc["exact_key"] == first_exact, "duplicate_exact", "duplicate_near")
        acc.loc[first, "split"] = dup_reason[first.to_numpy()]
        acc.loc[first, "duplicate_of"] = first_row[first]
    keep = ~acc["split"].str.startswith("duplicate")
    acc["group"] = [uf.find(int(i)) for i in acc["item_idx"]]
    kept = acc[keep]
    # A group's stable content key (smallest near_key) and stratum (its violation topic, or None).
    group_key = kept.groupby("group")["near_key"].min().astype(str)
    topics = kept[kept["final_verdict"] == "NON_COMPLIANT"].groupby("group")["compliance_topic"].min()
    strata = topics.reindex(group_key.index).fillna("None")
    mapping = assign_splits(group_key.tolist(), strata.tolist(), cfg.data.validation_fraction,
                            cfg.data.test_fraction, cfg.data.seed)
    by_group = {g: mapping[k] for g, k in group_key.items()}
    acc.loc[keep, "split"] = kept["group"].map(by_group)
    keys.loc[ok, "split"] = acc["split"].to_numpy()
    keys.loc[ok, "duplicate_of"] = acc["duplicate_of"].to_numpy()
    order = np.argsort(keys["rid"].to_numpy())
    plan = SplitPlan(
        rids=keys["rid"].to_numpy()[order],
        codes=np.array([CODES.index(s) for s in keys["split"].to_numpy()[order]], dtype=np.int8),
        duplicate_of={int(r): d for r, d in zip(keys["rid"], keys["duplicate_of"]) if d},
    )
    dup = keys["split"].str.startswith("duplicate")
    keys.loc[dup, "reason"] = keys.loc[dup, "split"]
    keys.loc[dup, "status"] = "rejected"
    keys.loc[dup, "detail"] = "duplicate of " + keys.loc[dup, "duplicate_of"]
    keys.loc[dup, "split"] = "rejected"
    return plan, keys


def run_prepare(cfg: PrepareConfig) -> PrepareResult:
    """Run both passes; write ``<output_dir>/split={train,validation,test,rejected}/`` Parquet (Hive
    partitions, which Ray Data, pyarrow, datasets and Spark read natively, the folder as a whole too),
    ``_rejects.jsonl`` and ``_manifest.json``. The output is built in a staging folder and replaces the
    previous one only on success. Relative input and output paths are resolved on the driver, so Ray
    workers in other directories (``ray.address`` set) read and write the same files.
    Raises FileNotFoundError for inputs that match no file, ValueError when the model's tokenizer has no chat
    template or format.system_role=system meets a template that drops the system message."""
    import ray
    import ray.data

    from pipeline.models import load_tokenizer, resolve_model_path

    t0 = time.time()
    out = absolute(cfg.data.output_dir.rstrip("/"))
    inputs = [absolute(p) for p in cfg.data.paths]
    check_inputs(inputs)
    source = JsonLinesSource(inputs, max_line_bytes=cfg.data.max_line_bytes)
    dangling = broken_links(inputs)
    paths = source._paths() + [p for p, _ in dangling]  # every file as Ray will read it, and the unreadable links
    labels = file_labels(paths)
    model_path = resolve_model_path(cfg.model.name_or_path)  # converts the embedded model once, here
    tokenizer = load_tokenizer(model_path, cfg.model.revision, cfg.model.trust_remote_code)
    system_role = resolve_system_role(tokenizer, cfg.format.system_prompt or SYSTEM_PROMPT, cfg.format.system_role)
    lines = ray.data.read_datasource(source)
    if dangling:
        lines = lines.union(ray.data.from_arrow(file_event_table(dangling, "dangling_symlink")))
    with staged_output(out, cfg.data.output_access) as stage:
        staging = f"{stage}/_staging"
        (lines
            .map_batches(parse_lines, fn_kwargs={"labels": labels}, batch_format="pyarrow", batch_size=None)
            .map_batches(format_records, fn_kwargs=dict(
                model_path=model_path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
                system_prompt=cfg.format.system_prompt, system_role=system_role, max_seq_len=cfg.data.max_seq_len,
                overlong=cfg.data.overlong), batch_format="pyarrow", batch_size=256)
            .write_parquet(staging))
        keys = ray.data.read_parquet(staging, columns=KEY_COLUMNS).to_pandas()
        plan, keys = plan_splits(keys, cfg)
        (ray.data.read_parquet(staging)
            .map_batches(stamp_split, fn_kwargs={"plan_ref": ray.put(plan)}, batch_format="pyarrow", batch_size=None)
            .write_parquet(stage, partition_cols=["split"]))
        remove_tree(staging)
        write_rejects(keys, f"{stage}/{REJECTS_NAME}")
        manifest = build_manifest(keys, cfg, paths, labels, tokenizer, system_role, time.time() - t0)
        manifest["config"] = config_to_dict(cfg)
        manifest["outputs"] = {s: f"{out}/split={s}" for s in ("train", "validation", "test", "rejected")}
        manifest["outputs"]["rejects"] = f"{out}/{REJECTS_NAME}"
        manifest["shortcut_audit"] = (shortcut_audit_from_prepared(str(stage), splits=("validation", "test"))
                                      if "://" not in out else {"skipped": "the audit reads local prepared folders only"})
        write_json(f"{stage}/{MANIFEST_NAME}", manifest)
    return PrepareResult(out, manifest)
