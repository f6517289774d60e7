"""The preparation stage on Ray Data: raw JSON Lines -> validated, formatted, leakage-free splits.

Pass 1 streams every line through parsing/validation (stateless tasks) and chat formatting (an
actor pool holding the tokenizer) into a staging Parquet. The driver then reads back only a few
small key columns to decide duplicates, pair groups and the stratified split (global decisions that
need every key, about 40 bytes per record). Pass 2 streams the staging data again, stamps each row
with its split, and writes ``train/``, ``validation/``, ``test/`` and ``rejected/`` Parquet.
Peak memory is bounded by block sizes, not by input size, apart from that key table.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.prepare.config import PrepareConfig
from pipeline.formatting import ChatFormatter, answer_json
from pipeline.reader import JsonLinesSource
from pipeline.schema import collapse_ws
from pipeline.prepare.validation import RECORD_COLUMNS, parse_line, reject_row

log = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w]+")
RECORD_SCHEMA = pa.schema([
    (c, pa.int64() if c == "line" else pa.list_(pa.string()) if c == "evidence_list" else pa.string())
    for c in RECORD_COLUMNS
])
FORMATTED_SCHEMA = RECORD_SCHEMA.append(pa.field("answer", pa.string())).append(pa.field("prompt", pa.string())) \
    .append(pa.field("completion", pa.string())).append(pa.field("input_ids", pa.list_(pa.int32()))) \
    .append(pa.field("prompt_tokens", pa.int32())).append(pa.field("num_tokens", pa.int32())) \
    .append(pa.field("truncated", pa.bool_())).append(pa.field("original_tokens", pa.int32())) \
    .append(pa.field("rid", pa.int64())).append(pa.field("exact_key", pa.int64())) \
    .append(pa.field("near_key", pa.int64())).append(pa.field("content_key", pa.int64()))


def hash64(text: str) -> int:
    """A signed 64-bit content hash (Arrow-friendly)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little",
                          signed=True)


def near_form(scenario: str) -> str:
    """Case, whitespace and punctuation removed: two scenarios equal here are near-exact duplicates."""
    return " ".join(_PUNCT.sub(" ", scenario.lower()).split())


def parse_lines(batch: pa.Table, labels: dict[str, str]) -> pa.Table:
    """Ray Data batch fn: raw line rows -> record rows (accepted or rejected)."""
    out: list[dict] = []
    for row in batch.to_pylist():
        path = row["path"]
        label = labels.get(path, os.path.basename(path))
        if row["error"]:
            out.append(reject_row(f"{label}:{row['line']}", path, row["line"], row["error"], row["detail"]))
        else:
            out.extend(parse_line(row["raw"], path, label, row["line"], row["oversize"]))
    return pa.Table.from_pylist(out, schema=RECORD_SCHEMA)


@functools.lru_cache(maxsize=4)
def _formatter(model_path: str, revision: str | None, trust_remote_code: bool, system_prompt: str | None,
               system_role: str) -> ChatFormatter:
    """One tokenizer per Ray worker process, loaded on first use and reused by every later task.

    Tasks (not an actor pool) let Ray fuse read -> parse -> format into one task per file, so on a
    small machine the tokenizer never waits for a CPU held by a reader.
    """
    from pipeline.models import load_tokenizer

    return ChatFormatter(load_tokenizer(model_path, revision, trust_remote_code), system_prompt, system_role)


def format_records(batch: pa.Table, model_path: str, revision: str | None, trust_remote_code: bool,
                   system_prompt: str | None, system_role: str, max_seq_len: int, overlong: str) -> pa.Table:
    """Ray Data batch fn: chat-format and tokenise accepted records, enforce the token budget."""
    formatter = _formatter(model_path, revision, trust_remote_code, system_prompt, system_role)
    return Budget(formatter, max_seq_len, overlong).apply(batch)


class Budget:
    """Formats a batch and applies the over-length policy (reject, or truncate keeping evidence)."""

    def __init__(self, formatter: ChatFormatter, max_seq_len: int, overlong: str):
        self.formatter = formatter
        self.max_seq_len = max_seq_len
        self.overlong = overlong

    def apply(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [r for r in rows if r["status"] == "accepted"]
        answers = [answer_json(r) for r in todo]
        encoded = self.formatter.encode_batch([r["scenario"] for r in todo], answers) if todo else []
        for row, answer, enc in zip(todo, answers, encoded):
            row.update(answer=answer, truncated=False, original_tokens=len(enc.input_ids))
            if len(enc.input_ids) > self.max_seq_len:
                enc = self._over_budget(row, answer, enc)
            if enc is not None:
                row.update(prompt=enc.prompt, completion=enc.completion, input_ids=enc.input_ids,
                           prompt_tokens=enc.prompt_tokens, num_tokens=len(enc.input_ids))
        for row in rows:
            row.setdefault("input_ids", [])
            row["rid"] = hash64(row["id"])
            if row["status"] == "accepted":
                row["exact_key"] = hash64(row["scenario"])
                row["near_key"] = hash64(near_form(row["scenario"]))
                row["content_key"] = hash64(row["prompt"] + row["completion"])
        return pa.Table.from_pylist(rows, schema=FORMATTED_SCHEMA)

    def _over_budget(self, row: dict, answer: str, enc):
        """Reject, or cut the communication's tail until the example fits; None when rejected."""
        n = len(enc.input_ids)
        if self.overlong == "reject":
            row.update(status="rejected", reason="too_long", detail=f"{n} tokens > data.max_seq_len={self.max_seq_len}")
            return None
        tokenizer = self.formatter.tokenizer
        # Split control-token text into ordinary tokens, so that cutting and decoding keep it as text.
        scenario_ids = tokenizer(row["scenario"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        scenario = row["scenario"]
        for _ in range(4):  # re-tokenising the cut text can shift a few tokens: tighten and retry
            keep = len(scenario_ids) - (n - self.max_seq_len) - 8
            if keep <= 0:
                break
            scenario_ids = scenario_ids[:keep]
            scenario = tokenizer.decode(scenario_ids, skip_special_tokens=True).strip()
            enc = self.formatter.encode(scenario, answer)
            n = len(enc.input_ids)
            if n <= self.max_seq_len:
                break
        if n > self.max_seq_len:
            row.update(status="rejected", reason="too_long", detail=f"{row['original_tokens']} tokens; the answer alone "
                       f"leaves no room within data.max_seq_len={self.max_seq_len}")
            return None
        lost = [q for q in row["evidence_list"] if collapse_ws(q) not in collapse_ws(scenario)]
        if lost:
            row.update(status="rejected", reason="evidence_truncated",
                       detail=f"cut to {n} tokens loses: " + " | ".join(repr(q[:60]) for q in lost))
            return None
        row.update(scenario=scenario, truncated=True)
        return enc


@dataclass
class SplitPlan:
    """Driver-side decisions, broadcast to pass 2: split code per record hash id."""

    rids: np.ndarray  # sorted int64
    codes: np.ndarray  # int8 index into CODES
    duplicate_of: dict[int, str]  # rid -> id of the record it duplicates


CODES = ("train", "validation", "test", "rejected", "duplicate_exact", "duplicate_near")


_PLANS: dict[str, SplitPlan] = {}


def stamp_split(batch: pa.Table, plan_ref) -> pa.Table:
    """Ray Data batch fn: add the `split` column; duplicates become rejects with their reason.

    `plan_ref` is an ObjectRef of the SplitPlan, fetched once per worker process.
    """
    import ray

    key = plan_ref.hex()
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = ray.get(plan_ref)
    plan = _PLANS[key]
    rids = batch.column("rid").to_numpy()
    pos = np.minimum(np.searchsorted(plan.rids, rids), len(plan.rids) - 1)
    assert (plan.rids[pos] == rids).all(), "a staged record is missing from the split plan"
    codes = plan.codes[pos]
    status = batch.column("status").to_pylist()
    reason = batch.column("reason").to_pylist()
    detail = batch.column("detail").to_pylist()
    split = []
    for i, code in enumerate(codes):
        name = CODES[code] if status[i] == "accepted" else "rejected"
        if name.startswith("duplicate"):
            status[i], reason[i] = "rejected", name
            detail[i] = f"duplicate of {plan.duplicate_of.get(int(rids[i]), '?')}"
            name = "rejected"
        split.append(name)
    for col, values in (("status", status), ("reason", reason), ("detail", detail)):
        batch = batch.set_column(batch.schema.get_field_index(col), col, pa.array(values, pa.string()))
    return batch.append_column("split", pa.array(split, pa.string()))


def file_labels(paths: list[str]) -> dict[str, str]:
    """Short, unique names for input files (path under their common folder) used in record ids."""
    root = os.path.dirname(os.path.commonprefix(paths) if len(paths) > 1 else paths[0])
    return {p: p[len(root):].lstrip("/") for p in paths}

