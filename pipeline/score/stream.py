"""The driver's side of streaming scoring: rows in, duplicates folded, engine batches out, units committed.

Rows arrive from Ray Data's read stage (pipeline/score/units.py) in blocks. Each accepted row's text key
is looked up: a key already scored (this run or a run before, `ResultStore`) gives its result at once,
a key being scored collects the row to wait for it, a new key is queued; full batches of distinct texts
go to the engine actors (`EngineActor`, at most two batches in flight per actor, so memory is bounded by
the batch size, not the archive). A result is written for every row waiting on its key: the first as
scored, the others as duplicates. A unit is committed when its end marker has come and every one of
its rows is written or rejected.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import pyarrow as pa

from pipeline.score.ledger import Ledger, UnitWriter
from pipeline.score.dedup import ResultStore, relocate

log = logging.getLogger(__name__)

# The result of scoring one text (ScoreBatch's columns), as written for every row with that text. `windows`:
# how many windows the text was scored in (null when the cascade spared it); `risk_start`/`risk_end`: the
# characters of its riskiest window; `evidence`: JSON quotes with their `start`/`end` offsets into the text.
RESULT_SCHEMA = pa.schema([
    ("first_stage", pa.float64()), ("spared", pa.bool_()), ("windows", pa.int64()), ("p_violation", pa.float64()),
    ("risk_start", pa.int64()), ("risk_end", pa.int64()), ("flagged", pa.bool_()), ("pred_json", pa.string()),
    ("pred_verdict", pa.string()), ("pred_topic", pa.string()), ("pred_severity", pa.string()),
    ("pred_rule", pa.string()), ("evidence", pa.string()), ("parse_status", pa.string()),
    ("grounded_rate", pa.float64()), ("new_tokens", pa.int64()), ("model_version", pa.string()),
])
# Where a communication came from and what the archive says of it, per row (not per text).
ROW_FIELDS = [pa.field("id", pa.string()), pa.field("timestamp", pa.string()),
              pa.field("participants", pa.list_(pa.string())), pa.field("channel", pa.string()),
              pa.field("file", pa.string()), pa.field("line", pa.int64()), pa.field("offset", pa.int64())]
SCORE_SCHEMA = pa.schema([*ROW_FIELDS, ("duplicate_of", pa.string()), *RESULT_SCHEMA, ("data_version", pa.string())])
FLAGGED_SCHEMA = SCORE_SCHEMA.append(pa.field("text", pa.string()))


def result_columns(row: dict) -> dict:
    """ScoreBatch's output row -> RESULT_SCHEMA's columns (absent -> null, NaN -> null, counts as int)."""
    out = {}
    for field in RESULT_SCHEMA:
        v = row.get(field.name)
        if isinstance(v, float) and v != v:
            v = None
        if v is not None and pa.types.is_integer(field.type):
            v = int(v)
        out[field.name] = v
    return out


class ScoreStream:
    """Folds archive rows into engine batches and results into committed units (see the module docstring)."""

    def __init__(self, ledger: Ledger, store: ResultStore, actors: list, batch_size: int, data_version: str,
                 progress=None):
        self.ledger, self.store, self.actors = ledger, store, actors
        self.batch_size, self.data_version, self.progress = batch_size, data_version, progress
        self.writers: dict[int, UnitWriter] = {}
        self.expected: dict[int, int] = {}
        self.resolved: Counter = Counter()
        self.counts: dict[int, Counter] = {}
        self.reasons: dict[int, Counter] = {}
        self.pending: dict[str, list[dict]] = {}  # key -> rows waiting for its result; the first is scored
        self.queue: list[str] = []  # keys to score, oldest first
        self.inflight: dict = {}  # ObjectRef -> keys of the batch
        self.sent = 0
        self.markers: dict[int, dict] = {}

    # -- rows in ------------------------------------------------------------------------------------
    def feed(self, table: pa.Table) -> None:
        """Take one block of archive rows (STREAM_SCHEMA); writes what can be written, sends full batches."""
        rows = table.to_pylist()
        fresh = [r["key"] for r in rows if r["unit_rows"] < 0 and not r["reason"] and r["key"] not in self.pending]
        stored = self.store.lookup(fresh) if fresh else {}
        touched = set()
        for r in rows:
            unit = r["unit"]
            touched.add(unit)
            if r["unit_rows"] >= 0:
                self.expected[unit] = r["unit_rows"]
            elif r["reason"]:
                self._writer(unit).add(reject={"file": r["file"], "line": r["line"], "offset": r["offset"],
                                               "id": r["id"], "reason": r["reason"], "detail": r["detail"]})
                self._count(unit, "rejected")
                self.reasons.setdefault(unit, Counter())[r["reason"]] += 1
            elif r["key"] in self.pending:
                self.pending[r["key"]].append(r)
            elif r["key"] in stored:
                first, first_id, first_text, result = stored[r["key"]]
                self._emit(r, relocate(result, first_text, r["text"]), first_id if first != _where(r) else None)
            else:
                self.pending[r["key"]] = [r]
                self.queue.append(r["key"])
        for unit in touched:
            self._commit_if_done(unit)
        self._send(final=False)
        self._collect(block=False)

    def finish(self) -> dict[int, dict]:
        """Score what is queued, wait for every batch, commit the last units; returns the markers written."""
        self._send(final=True)
        while self.inflight:
            self._collect(block=True)
        open_units = sorted(self.writers)
        if open_units:  # every unit read ends with a marker row: one left open means rows were lost
            raise RuntimeError(f"unit(s) {open_units[:10]} ended without all their rows (expected "
                               f"{[self.expected.get(u) for u in open_units[:10]]}, got "
                               f"{[self.resolved[u] for u in open_units[:10]]})")
        return self.markers

    # -- engine batches -----------------------------------------------------------------------------
    def _send(self, final: bool) -> None:
        import pandas as pd

        while len(self.queue) >= self.batch_size or (final and self.queue):
            if len(self.inflight) >= 2 * len(self.actors):
                self._collect(block=True)
            keys, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
            batch = pd.DataFrame({"key": keys, "text": [self.pending[k][0]["text"] for k in keys]})
            actor = self.actors[self.sent % len(self.actors)]
            self.inflight[actor.score.remote(batch)] = keys
            self.sent += 1

    def _collect(self, block: bool) -> None:
        import ray

        if not self.inflight:
            return
        refs = list(self.inflight)
        ready, _ = ray.wait(refs, num_returns=1 if block else len(refs), timeout=None if block else 0)
        touched = set()
        for ref in ready:
            self.inflight.pop(ref)
            scored = pa.Table.from_pandas(ray.get(ref), preserve_index=False).to_pylist()
            entries = []
            for row in scored:
                result = result_columns(row)
                waiting = self.pending.pop(row["key"])
                first = waiting[0]
                entries.append((row["key"], _where(first), first["id"], first["text"], result))
                for i, r in enumerate(waiting):
                    self._emit(r, relocate(result, first["text"], r["text"]) if i else result,
                               first["id"] if i else None)
                    touched.add(r["unit"])
            self.store.put(entries)
        for unit in touched:
            self._commit_if_done(unit)

    # -- rows out -----------------------------------------------------------------------------------
    def _emit(self, row: dict, result: dict, duplicate_of: str | None) -> None:
        unit = row["unit"]
        score = {**{f.name: row[f.name] for f in ROW_FIELDS}, "duplicate_of": duplicate_of, **result,
                 "data_version": self.data_version}
        self._writer(unit).add(score=score, flagged={**score, "text": row["text"]} if result["flagged"] else None)
        self._count(unit, "duplicates" if duplicate_of is not None else "scored")
        self.counts[unit]["flagged"] += bool(result["flagged"])
        self.counts[unit]["chunked"] += (result["windows"] or 0) > 1
        self.counts[unit]["spared"] += bool(result["spared"])

    def _count(self, unit: int, what: str) -> None:
        self.counts.setdefault(unit, Counter())[what] += 1
        self.resolved[unit] += 1
        if self.progress is not None:
            self.progress.update(1)

    def _writer(self, unit: int) -> UnitWriter:
        if unit not in self.writers:
            self.writers[unit] = UnitWriter(self.ledger, unit, SCORE_SCHEMA, FLAGGED_SCHEMA)
        return self.writers[unit]

    def _commit_if_done(self, unit: int) -> None:
        if unit not in self.expected or self.resolved[unit] != self.expected[unit]:
            return
        counts = self.counts.pop(unit, Counter())
        marker = {"unit": unit, "read": self.expected.pop(unit),
                  **{k: int(counts[k]) for k in ("scored", "duplicates", "rejected", "flagged", "chunked", "spared")},
                  "rejects_by_reason": dict(self.reasons.pop(unit, Counter())), "committed_at": time.time()}
        self._writer(unit).commit(marker)
        del self.writers[unit]
        self.resolved.pop(unit, None)
        self.markers[unit] = marker
        if self.progress is not None:
            self.progress.set_postfix_str(f"{len(self.markers)} unit(s) committed this run", refresh=False)


def _where(row: dict) -> str:
    """Where a row comes from, as the duplicate store records the row a result was computed for."""
    return f"{row['file']}:{row['line']}"
