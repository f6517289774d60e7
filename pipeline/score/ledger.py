"""The scoring output folder as a ledger: committed unit by unit, resumed, never mixed.

Layout of `output_dir`:
    _run.json              what the results depend on (the fingerprint) and the planned units
    scores/unit-NNNNNN.parquet   one row per communication of the unit (no text)
    flagged/unit-NNNNNN.parquet  its flagged communications, with their text (the alert queue's input)
    rejects/unit-NNNNNN.jsonl    its rejected lines, with reasons
    _done/unit-NNNNNN.json       the completion marker with the unit's counts, written last
    _state/dedup.sqlite          results by text key, so duplicates (and a resumed run) are not rescored
    summary.json, rejects.jsonl, alerts.html, alerts.csv   rebuilt at the end of every run

A unit's parts are written under hidden temporary names, moved into place, then its marker is written:
a unit without a marker is redone whole on resume (its parts are overwritten under the same names), so a
run killed at any point and started again ends with exactly one row per communication. Parquet readers
skip the hidden temporary files and the `_` folders, so `scores/` reads as one table. A rerun whose
fingerprint differs from `_run.json` (another model, threshold, archive ...) is refused unless `restart`
is set, which clears the results first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

from pipeline.outputs import is_uri

log = logging.getLogger(__name__)

RUN_FILE = "_run.json"
PARTS = ("scores", "flagged", "rejects", "_done", "_state")
FINAL_FILES = ("summary.json", "rejects.jsonl", "alerts.html", "alerts.csv")


def unit_name(index: int) -> str:
    return f"unit-{index:06d}"


class Ledger:
    """The output folder of one scoring run (a local path or a URI)."""

    def __init__(self, root: str, access: str | None):
        import pyarrow.fs

        self.root, self.access = root.rstrip("/"), access
        self.fs, self.base = pyarrow.fs.FileSystem.from_uri(self.root if is_uri(self.root) else os.path.abspath(root))
        self.local = not is_uri(self.root)

    # -- paths and plain file operations ----------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def exists(self, *parts: str) -> bool:
        import pyarrow.fs

        return self.fs.get_file_info(self.path(*parts)).type != pyarrow.fs.FileType.NotFound

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a file atomically where the filesystem can rename (a hidden temporary name, then moved)."""
        folder, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        tmp = f"{folder}/.{name}.tmp" if folder else f".{name}.tmp"
        with self.fs.open_output_stream(self.path(tmp)) as f:
            f.write(data)
        self.move(tmp, rel)

    def read_json(self, rel: str) -> dict:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return json.loads(f.read().decode())

    def move(self, src: str, dst: str) -> None:
        self.fs.move(self.path(src), self.path(dst))

    def mkdirs(self) -> None:
        if self.local:
            os.makedirs(self.base, mode=0o700 if self.access else 0o777, exist_ok=True)
        for part in PARTS:
            self.fs.create_dir(self.path(part), recursive=True)

    def listing(self, part: str) -> list[str]:
        """Names of the files in a part folder (hidden temporary files included)."""
        import pyarrow.fs

        if not self.exists(part):
            return []
        return sorted(i.base_name for i in self.fs.get_file_info(pyarrow.fs.FileSelector(self.path(part)))
                      if i.type == pyarrow.fs.FileType.File)

    # -- the run record -----------------------------------------------------------------------------
    def open_run(self, fingerprint: dict, restart: bool, plan) -> tuple[list[dict], dict[int, dict]]:
        """Resume or start the run: returns (units as dicts, markers of committed units by index).

        `plan` is called to plan the units only when the folder holds no run with this fingerprint. Raises
        ValueError when the folder holds a run with another fingerprint and `restart` is not set.
        """
        if self.exists(RUN_FILE):
            record = self.read_json(RUN_FILE)
            changes = diff(record.get("fingerprint", {}), fingerprint)
            if changes and not restart:
                raise ValueError(
                    f"output_dir={self.root} holds results of a run with another setup ({'; '.join(changes[:8])}"
                    f"{'; ...' if len(changes) > 8 else ''}): resuming would mix results. Use another output_dir, or "
                    f"restart=true to discard those results and score from the start")
            if not changes and not restart:
                markers = {int(n[5:11]): self.read_json(f"_done/{n}") for n in self.listing("_done")
                           if n.startswith("unit-") and n.endswith(".json")}
                self._drop_temporaries()
                log.info("resuming %s: %d of %d unit(s) already committed", self.root, len(markers),
                         len(record["units"]))
                return record["units"], markers
            log.warning("restart=true: discarding the results in %s", self.root)
        elif any(self.exists(p) for p in (*PARTS, *FINAL_FILES)):
            # An output of the job before it was resumable (or one interrupted then): replaced, not resumed.
            log.warning("%s holds scoring output without a %s record: it is replaced", self.root, RUN_FILE)
        self.clear()
        self.mkdirs()
        units = [u.as_dict() for u in plan()]
        self.write_bytes(RUN_FILE, json.dumps({"fingerprint": fingerprint, "units": units}, default=str).encode())
        return units, {}

    def clear(self) -> None:
        """Delete the ledger's own entries (never other files a user put in the folder)."""
        for part in PARTS:
            if self.exists(part):
                self.fs.delete_dir(self.path(part))
        for name in (*FINAL_FILES, RUN_FILE):
            if self.exists(name):
                self.fs.delete_file(self.path(name))

    def _drop_temporaries(self) -> None:
        for part in PARTS[:3]:
            for name in self.listing(part):
                if name.startswith("."):
                    self.fs.delete_file(self.path(part, name))

    def state_dir(self) -> str:
        """Local folder for the duplicate store: inside the output when it is local, else a temporary folder
        (then a resumed run rescoring a unit's texts pays for them again; results are the same)."""
        if self.local:
            return self.path("_state")
        return tempfile.mkdtemp(prefix="complyray-score-state-")

    def finish(self) -> None:
        """Apply the output's access modes (local folders; cloud storage keeps its own ACLs)."""
        if self.local and self.access:
            from pipeline.outputs import apply_access

            apply_access(Path(self.base), self.access)


class UnitWriter:
    """The parts of one unit, written as its rows resolve, committed together with the marker."""

    def __init__(self, ledger: Ledger, index: int, score_schema: pa.Schema, flagged_schema: pa.Schema):
        self.ledger, self.index, self.name = ledger, index, unit_name(index)
        self.score_schema, self.flagged_schema = score_schema, flagged_schema
        self.scores: list[dict] = []
        self.flagged: list[dict] = []
        self.rejects: list[dict] = []
        self._writers: dict[str, object] = {}
        self._rejects_out = None

    def _flush(self, part: str, rows: list[dict], schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        if part not in self._writers:
            self._writers[part] = pq.ParquetWriter(self.ledger.path(part, f".{self.name}.parquet.tmp"), schema,
                                                   filesystem=self.ledger.fs)
        self._writers[part].write_table(pa.Table.from_pylist(rows, schema=schema))
        rows.clear()

    def add(self, score: dict | None = None, flagged: dict | None = None, reject: dict | None = None,
            flush_rows: int = 2048) -> None:
        """Add one row to a part; parts are flushed to their temporary files every `flush_rows` rows."""
        if score is not None:
            self.scores.append(score)
            if len(self.scores) >= flush_rows:
                self._flush("scores", self.scores, self.score_schema)
        if flagged is not None:
            self.flagged.append(flagged)
            if len(self.flagged) >= flush_rows:
                self._flush("flagged", self.flagged, self.flagged_schema)
        if reject is not None:
            if self._rejects_out is None:
                self._rejects_out = self.ledger.fs.open_output_stream(self.ledger.path("rejects", f".{self.name}.jsonl.tmp"))
            self._rejects_out.write((json.dumps(reject, ensure_ascii=False) + "\n").encode())

    def commit(self, marker: dict) -> None:
        """Close the parts, move them into place, then write the completion marker (the commit point)."""
        for part, rows, schema in (("scores", self.scores, self.score_schema),
                                   ("flagged", self.flagged, self.flagged_schema)):
            if rows or (part == "scores" and part not in self._writers):
                self._flush(part, rows, schema)  # every unit has a scores part, even an all-rejects one
        for part, writer in self._writers.items():
            writer.close()
            self.ledger.move(f"{part}/.{self.name}.parquet.tmp", f"{part}/{self.name}.parquet")
        if self._rejects_out is not None:
            self._rejects_out.close()
            self.ledger.move(f"rejects/.{self.name}.jsonl.tmp", f"rejects/{self.name}.jsonl")
        self.ledger.write_bytes(f"_done/{self.name}.json", json.dumps(marker).encode())


def diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two fingerprints (dotted keys, old -> new)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, name + ".")
        elif a != b:
            if key == "archive_version":
                out.append(f"the archive changed (files added, removed or modified: listing {a} -> {b})")
            else:
                out.append(f"{name}: {a!r} -> {b!r}")
    return out


def remove_local(path: str) -> None:
    """Delete a local temporary folder (the duplicate store of a cloud output)."""
    shutil.rmtree(path, ignore_errors=True)

