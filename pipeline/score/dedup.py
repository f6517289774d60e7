"""Results by text key on disk, so identical communications are scored once, in this run and on resume.

A SQLite file (bounded memory whatever the archive's size: only SQLite's page cache is held) maps a
communication's key (`pipeline.score.units.text_key`) to the result columns computed for it and to the
row it was computed for (`first`, "file:line", and its id). A later row with the same key takes that
result and counts as a duplicate; the row the result was computed for counts as scored, also when a
resumed run reads it again. A result's character offsets (the riskiest window, evidence quotes) point
into the text it was computed for; a duplicate whose whitespace differs gets them moved onto its own
text (`relocate`), so the store keeps that first text for results that carry such offsets.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from bisect import bisect_left


class ResultStore:
    """Key -> (first row, first id, first text or None, result columns) in a SQLite file; only the driver opens it."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.db = sqlite3.connect(os.path.join(folder, "dedup.sqlite"))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, first TEXT, first_id TEXT, "
                        "first_text TEXT, result TEXT)")

    def lookup(self, keys: list[str]) -> dict[str, tuple[str, str, str | None, dict]]:
        """Stored results of those `keys` that have one: key -> (first, first_id, first_text, result columns);
        first_text is None when the result carries no offsets beyond the whole text."""
        found = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            part = unique[i:i + 500]
            rows = self.db.execute(f"SELECT key, first, first_id, first_text, result FROM results WHERE key IN "
                                   f"({','.join('?' * len(part))})", part)
            found.update({k: (first, first_id, text, json.loads(r)) for k, first, first_id, text, r in rows})
        return found

    def put(self, entries: list[tuple[str, str, str, str, dict]]) -> None:
        """Store (key, first, first_id, first_text, result columns) entries; committed at once (the text only
        when the result has offsets that a duplicate would need moved)."""
        self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                            [(k, f, i, t if _has_offsets(r) else None, json.dumps(r, default=float))
                             for k, f, i, t, r in entries])
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def _has_offsets(result: dict) -> bool:
    """The result points into its text beyond 'all of it': several windows, or evidence quotes."""
    return (result.get("windows") or 0) > 1 or bool(result.get("evidence"))


def relocate(result: dict, first_text: str | None, text: str) -> dict:
    """`result`, computed for `first_text`, with its character offsets moved onto `text`, a duplicate equal to
    it up to whitespace: the riskiest window (`risk_start`, `risk_end`) and the evidence quotes' `start`/`end`.
    An offset keeps its place among the non-whitespace characters (which both texts share, in order)."""
    if text == first_text or result.get("windows") is None:
        return result
    out = dict(result)
    if result["windows"] == 1:  # one window: the whole text
        out["risk_start"], out["risk_end"] = 0, len(text)
    if first_text is None or not _has_offsets(result):
        return out
    src = [m.start() for m in _NON_WS.finditer(first_text)]
    dst = [m.start() for m in _NON_WS.finditer(text)]

    def start(o):  # at the same non-whitespace character
        k = bisect_left(src, o)
        return dst[k] if k < len(dst) else len(text)

    def end(o):  # just after the same non-whitespace character
        k = bisect_left(src, o)
        return dst[k - 1] + 1 if k else 0

    if result["windows"] > 1:
        out["risk_start"], out["risk_end"] = start(result["risk_start"]), end(result["risk_end"])
    if result.get("evidence"):
        quotes = json.loads(result["evidence"])
        for q in quotes:
            if isinstance(q, dict) and isinstance(q.get("start"), int) and isinstance(q.get("end"), int):
                q["start"], q["end"] = start(q["start"]), end(q["end"])
        out["evidence"] = json.dumps(quotes, ensure_ascii=False)
    return out


_NON_WS = re.compile(r"\S")
