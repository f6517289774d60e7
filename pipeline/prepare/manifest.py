"""The preparation manifest: what was read, what was kept, where it went, and a content hash.

Later jobs record the hash so any model or report can be traced to the exact data it saw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd

from pipeline.artifacts import open_output, provenance
from pipeline.prepare.validation import REASONS

FILE_LEVEL = ("empty_file", "unreadable_file", "dangling_symlink")
SPLITS = ("train", "validation", "test")
# Beside the split=* partitions and MANIFEST_NAME (pipeline/artifacts.py): skipped by Parquet readers too.
REJECTS_NAME = "_rejects.jsonl"


def write_rejects(keys: pd.DataFrame, path: str) -> int:
    """One JSON line per rejected record or file event: file, line, id, version, reason, detail."""
    rejected = keys[keys["status"] == "rejected"].sort_values(["file", "line", "version"])
    with open_output(path) as f:
        for row in rejected[["file", "line", "id", "version", "reason", "detail"]].itertuples(index=False):
            f.write((json.dumps(row._asdict(), ensure_ascii=False) + "\n").encode())
    return len(rejected)


def content_hash(keys: pd.DataFrame) -> str:
    """sha256 over (id, split, formatted-content hash) of every kept record, in id order."""
    kept = keys[keys["split"].isin(SPLITS)].sort_values("id")
    h = hashlib.sha256()
    for rid, split, ck in zip(kept["id"], kept["split"], kept["content_key"]):
        h.update(f"{rid}\t{split}\t{ck}\n".encode())
    return h.hexdigest()


def _counts(series: pd.Series) -> dict:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def token_stats(values: pd.Series) -> dict:
    """p50/p95/max/mean of a token-count column (empty -> zeros)."""
    if values.empty:
        return {"p50": 0, "p95": 0, "max": 0, "mean": 0.0}
    v = values.to_numpy()
    return {"p50": int(np.percentile(v, 50)), "p95": int(np.percentile(v, 95)), "max": int(v.max()),
            "mean": round(float(v.mean()), 1)}


def build_manifest(keys: pd.DataFrame, cfg, paths: list[str], labels: dict[str, str], tokenizer,
                   system_role: str, seconds: float) -> dict:
    """Counts per file/reason/split/topic/verdict/severity/format/source, token statistics, provenance.

    Raises RuntimeError if the books do not balance or a pair straddles splits (both are bugs).
    """
    accepted = keys["status"] == "accepted"
    file_events = keys["reason"].isin(FILE_LEVEL)
    lines = keys[~file_events & (keys["reason"] != "truncated_gzip")].drop_duplicates(["file", "line"])
    counts = {
        "files": len(paths),
        "lines_read": int(len(lines)),
        "records_read": int(len(keys)),
        "accepted": int(accepted.sum()),
        "rejected": int((~accepted).sum()),
        "truncated": int(keys.loc[accepted, "truncated"].fillna(False).sum()),
    }
    if counts["accepted"] + counts["rejected"] != counts["records_read"]:
        raise RuntimeError(f"record accounting does not balance: {counts}")
    kept = keys[keys["split"].isin(SPLITS)]
    straddling = kept.groupby("item_id")["split"].nunique()
    if (straddling > 1).any():
        raise RuntimeError(f"pairs straddle splits: {straddling[straddling > 1].index[:5].tolist()}")
    per_file = {}
    for path in paths:
        rows = keys[keys["file"] == path]
        per_file[labels[path]] = {
            "path": path, "records": int(len(rows)), "accepted": int((rows["status"] == "accepted").sum()),
            "rejected": int((rows["status"] == "rejected").sum()),
            "file_errors": sorted(set(rows.loc[rows["reason"].isin(FILE_LEVEL + ("truncated_gzip",)), "reason"])),
        }
    per_split = {}
    for split in SPLITS:
        part = kept[kept["split"] == split]
        per_split[split] = {
            "records": int(len(part)), "pairs": int(part["item_id"].nunique()),
            "verdict": _counts(part["final_verdict"]), "severity": _counts(part["severity"]),
            "topic": _counts(part["compliance_topic"]), "format": _counts(part["format"]),
            "source": _counts(part["source"]),
            "tokens": token_stats(part["num_tokens"]), "prompt_tokens": token_stats(part["prompt_tokens"]),
        }
    template = tokenizer.chat_template or ""
    return {
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **provenance(),
        "content_hash": content_hash(keys),
        "seconds": round(seconds, 1),
        "counts": counts,
        "rejects_by_reason": {r: int(n) for r, n in keys.loc[~accepted, "reason"].value_counts().items()},
        "reason_descriptions": {r: REASONS[r] for r in keys.loc[~accepted, "reason"].unique()},
        "files": per_file,
        "splits": per_split,
        "tokenizer": {
            "model": cfg.model.name_or_path, "class": type(tokenizer).__name__,
            "bos": tokenizer.bos_token, "eos": tokenizer.eos_token, "pad": tokenizer.pad_token,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
            "system_role": system_role, "max_seq_len": cfg.data.max_seq_len, "overlong": cfg.data.overlong,
        },
    }


def format_summary(manifest: dict) -> str:
    """A short human-readable summary of a manifest."""
    c = manifest["counts"]
    lines = [
        f"read {c['lines_read']:,} lines from {c['files']} file(s) -> {c['records_read']:,} records: "
        f"{c['accepted']:,} accepted, {c['rejected']:,} rejected, {c['truncated']:,} truncated "
        f"({manifest['seconds']}s)",
    ]
    for reason, n in sorted(manifest["rejects_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  rejected {n:>7,}  {reason}: {manifest['reason_descriptions'][reason]}")
    for split, s in manifest["splits"].items():
        v = s["verdict"]
        lines.append(f"  {split:<10} {s['records']:>7,} records / {s['pairs']:,} pairs  "
                     f"NON_COMPLIANT {v.get('NON_COMPLIANT', 0):,}  COMPLIANT {v.get('COMPLIANT', 0):,}  "
                     f"{len(s['topic'])} topics  tokens p50 {s['tokens']['p50']} p95 {s['tokens']['p95']} "
                     f"max {s['tokens']['max']}")
    shortcut = manifest.get("shortcut_audit") or {}
    for name, scores in shortcut.get("sets", {}).items():
        lines.append(f"  bag-of-words baseline on {name}: accuracy {scores['accuracy']:.3f}  ROC-AUC "
                     f"{scores['roc_auc'] if scores['roc_auc'] is None else round(scores['roc_auc'], 3)}")
    if shortcut.get("warning"):
        lines.append(f"  WARNING: {shortcut['warning']}")
    lines.append(f"  content hash {manifest['content_hash'][:16]}  ->  {manifest['outputs']['train'].rsplit('/', 1)[0]}")
    return "\n".join(lines)
