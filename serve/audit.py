"""The audit trail: one JSON line per decision the service delivers.

A record identifies the decision (request_id, time, model, adapter, version), what was judged (the
communication's SHA-256; the raw text only when `audit.include_text`) and what was decided (verdict,
probability, parse status, latency). Several ingress replicas on one node may share the file: each
write takes a file lock, appends whole lines and flushes. The file is created 0600 (and a folder
created for it 0700) unless `audit.file_mode` says otherwise, whatever the process's umask.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    """Appends decision records to a JSON Lines file (created with its folder on first use, `file_mode` for the
    file and the lock beside it, the same plus search bits for the folder)."""

    def __init__(self, path: str, include_text: bool = False, file_mode: int = 0o600):
        self.path = Path(path)
        self.include_text = include_text
        self.file_mode = file_mode
        self.dir_mode = file_mode | (file_mode & 0o444) >> 2  # x wherever r: 0600 -> 0700, 0640 -> 0750
        self._lock = FileLock(str(self.path) + ".lock", mode=file_mode)

    def record(self, *, request_id: str, endpoint: str, text: str, client_id: str | None, model: dict,
               verdict: str | None, probability: float, parse_status: str | None, latency_ms: float) -> dict:
        """One decision as an audit record (not yet written)."""
        rec = {"request_id": request_id,
               "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
               "endpoint": endpoint, "id": client_id, "model": model["name"], "base": model["base"],
               "adapter": model["adapter"], "version": model["version"],
               "input_sha256": text_sha256(text), "input_chars": len(text), "verdict": verdict,
               "verdict_probability": round(probability, 6), "parse_status": parse_status,
               "latency_ms": round(latency_ms, 1)}
        if self.include_text:
            rec["text"] = text
        return rec

    def write(self, records: list[dict]) -> None:
        """Append `records`, one line each, under the file lock; flushed before returning."""
        if not records:
            return
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path.parent, self.dir_mode)  # mkdir's mode is cut by the umask; this is exact
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self._lock:  # every writer takes it: nobody creates the file between the check and the open
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.file_mode)
            if created:
                os.fchmod(fd, self.file_mode)  # os.open's mode is cut by the umask; this is exact
            with open(fd, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
