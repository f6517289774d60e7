"""Results by text key on disk, so identical communications are scored once, in this run and on resume.

A SQLite file (bounded memory whatever the archive's size: only SQLite's page cache is held) maps a
communication's key (`pipeline.score.units.text_key`) to the result columns computed for it and to the
row it was computed for (`first`, "file:line", and its id). A later row with the same key takes that
result and counts as a duplicate; the row the result was computed for counts as scored, also when a
resumed run reads it again.
"""

from __future__ import annotations

import json
import os
import sqlite3


class ResultStore:
    """Key -> (first row, first id, result columns) in a SQLite file; only the driver opens it."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.db = sqlite3.connect(os.path.join(folder, "dedup.sqlite"))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, first TEXT, first_id TEXT, "
                        "result TEXT)")

    def lookup(self, keys: list[str]) -> dict[str, tuple[str, str, dict]]:
        """Stored results of those `keys` that have one: key -> (first, first_id, result columns)."""
        found = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            part = unique[i:i + 500]
            rows = self.db.execute(f"SELECT key, first, first_id, result FROM results WHERE key IN "
                                   f"({','.join('?' * len(part))})", part)
            found.update({k: (first, first_id, json.loads(r)) for k, first, first_id, r in rows})
        return found

    def put(self, entries: list[tuple[str, str, str, dict]]) -> None:
        """Store (key, first, first_id, result columns) entries; committed at once."""
        self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                            [(k, f, i, json.dumps(r, default=float)) for k, f, i, r in entries])
        self.db.commit()

    def close(self) -> None:
        self.db.close()
