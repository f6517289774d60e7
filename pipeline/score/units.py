"""Units of work of archive scoring: the input files listed, cut into units, each read as archive rows.

A unit is what the job commits at once and skips on resume (pipeline/score/ledger.py): a byte range of
a plain JSON Lines file cut at line starts, or of a plain mbox cut at message separators (about
`unit_bytes` each, lines / messages numbered as in the whole file), a run of row groups of a Parquet
file, a batch of .eml files of about `unit_bytes`, or a whole file that cannot be entered midway (a
compressed stream; a CSV, whose quoted fields may span lines). A file whose format is unknown or whose
layout cannot be read is a unit of one reject. The plan is made once per output folder and kept in its
run record, so a resumed run reads exactly the units the first run planned. Reading a unit
(pipeline/score/sources.py for the formats) yields its rows in `STREAM_SCHEMA` (unreadable lines as
rejects with a reason and detail) and ends with one marker row that gives the unit's row count, so the
driver knows when every row of a unit has been accounted for.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Iterator

import pyarrow as pa

from pipeline.reader import CHUNK_BYTES
from pipeline.schema import collapse_ws
from pipeline.score.sources import (ARCHIVE_SCHEMA, FROM_LINE, Reading, file_chunks, file_format, is_compressed,
                                    raw_lines, read_eml, read_parquet_groups, read_stream, reject_table)

# Rows of the archive as they leave the readers (sources.ARCHIVE_SCHEMA) with `key`, the identity of the
# normalised text (duplicates share it), and `unit`; `unit_rows` is -1 on a communication and the unit's row
# count on its end marker (id '').
STREAM_SCHEMA = ARCHIVE_SCHEMA.append(pa.field("key", pa.string())).append(pa.field("unit", pa.int64())).append(
    pa.field("unit_rows", pa.int64()))


@dataclass(frozen=True)
class InputFile:
    """One listed input file and what identifies its content (a changed size or mtime is a changed archive)."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Unit:
    """A unit of work of one `format` (sources.file_format; '' when unknown): `kind` 'lines' (bytes [start, end)
    of a plain JSON Lines or mbox file, `first_line` lines / messages before it), 'stream' (a whole file read as
    a stream: compressed, or CSV), 'parquet' (row groups [start, end), `first_line` rows before them), 'eml'
    (the .eml files `files`), 'unreadable' (a file whose layout could not be read: one reject, `detail` says
    why) or 'unknown' (a file of no known format: one reject)."""

    index: int
    path: str
    kind: str
    format: str = ""
    start: int = 0
    end: int = 0
    first_line: int = 0
    detail: str = ""
    files: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Unit":
        return cls(**{**d, "files": tuple(d.get("files") or ())})


def _fs(path: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))


def list_inputs(paths: list[str]) -> list[InputFile]:
    """Every file under `paths` (files, folders searched recursively, local globs, cloud URIs), sorted, with
    its size and modification time. Names starting with '_' or '.' are skipped inside folders, as Ray's
    listing does."""
    import pyarrow.fs

    found: dict[str, InputFile] = {}
    for pattern in paths:
        roots = sorted(glob.glob(pattern)) if "://" not in pattern and glob.has_magic(pattern) else [pattern]
        for root in roots:
            fs, base = _fs(root)
            info = fs.get_file_info(base)
            infos = ([info] if info.type == pyarrow.fs.FileType.File else
                     fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=True)))
            for i in infos:
                rel = os.path.relpath(i.path, base) if i.path != base else ""
                if i.type != pyarrow.fs.FileType.File or any(p.startswith(("_", ".")) for p in rel.split(os.sep) if p):
                    continue
                full = root.rstrip("/") + "/" + rel if rel and "://" in root else (
                    os.path.join(root, rel) if rel else root)
                found[full] = InputFile(full, int(i.size or 0), int(i.mtime_ns or 0))
    return [found[p] for p in sorted(found)]


def archive_version(files: list[InputFile]) -> str:
    """A short hash of the listing (paths, sizes, modification times): the data version of the scored archive."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def plan_units(files: list[InputFile], unit_bytes: int, fmt: str = "auto") -> list[Unit]:
    """Cut the listed files into units of about `unit_bytes` (see the module docstring), each file read as
    `fmt` ('auto': by its extension). A plain JSON Lines or mbox file larger than one unit is read once here to
    find line / message starts and count them; Parquet files' footers are read."""
    spans: list[tuple] = []  # (path, kind, format, start, end, first_line, detail, files)
    emls: list[InputFile] = []

    def flush_emls():
        if emls:
            spans.append((emls[0].path, "eml", "eml", 0, 0, 0, "", tuple(f.path for f in emls)))
            emls.clear()

    for f in files:
        form = file_format(f.path, fmt)
        if form == "eml":
            if emls and sum(e.size for e in emls) + f.size > unit_bytes:
                flush_emls()
            emls.append(f)
            continue
        flush_emls()  # units in the listing's order
        if form is None:
            spans.append((f.path, "unknown", "", 0, 0, 0, "no format for this extension; set format: to read it", ()))
            continue
        if form == "parquet":
            found = _parquet_spans(f.path, unit_bytes)
        elif form == "csv" or is_compressed(f.path):  # quoted CSV fields may span lines: never cut
            found = [("stream", 0, f.size, 0, "")]
        elif f.size <= unit_bytes:
            found = [("lines", 0, f.size, 0, "")]
        else:
            found = (_line_spans if form == "jsonl" else _mbox_spans)(f.path, f.size, unit_bytes)
        spans += [(f.path, kind, form, a, b, n, d, ()) for kind, a, b, n, d in found]
    flush_emls()
    return [Unit(i, path, kind, fmt_, a, b, n, d, fs) for i, (path, kind, fmt_, a, b, n, d, fs) in enumerate(spans)]


def _line_spans(path: str, size: int, unit_bytes: int) -> list[tuple]:
    """Byte ranges of about `unit_bytes` that start at line starts, with the number of lines before each."""
    fs, p = _fs(path)
    spans, start, first_line, offset, lines, target = [], 0, 0, 0, 0, unit_bytes
    try:
        with fs.open_input_stream(p) as f:
            while chunk := f.read(4 << 20):
                pos = 0
                while offset + len(chunk) > target:  # a cut falls in this chunk: at the first line start at or after it
                    nl = chunk.find(b"\n", max(pos, target - offset - 1))
                    if nl < 0:
                        break
                    lines += chunk.count(b"\n", pos, nl + 1)
                    pos = nl + 1
                    if offset + pos < size:
                        spans.append(("lines", start, offset + pos, first_line, ""))
                        start, first_line = offset + pos, lines
                    target = offset + pos + unit_bytes
                lines += chunk.count(b"\n", pos)
                offset += len(chunk)
    except (OSError, pa.ArrowException) as e:
        return [("unreadable", 0, 0, 0, f"{type(e).__name__}: {e}"[:500])]
    spans.append(("lines", start, size, first_line, ""))
    return spans


def _mbox_spans(path: str, size: int, unit_bytes: int) -> list[tuple]:
    """Byte ranges of about `unit_bytes` of a plain mbox, each starting at a message's `From ` separator, with
    the number of messages before each."""
    fs, p = _fs(path)
    spans, start, before, messages, target, prev_blank = [], 0, 0, 0, unit_bytes, True
    try:
        with fs.open_input_stream(p) as f:
            for offset, line in raw_lines(file_chunks(f), 1 << 20):
                if prev_blank and FROM_LINE.match(line):
                    if offset >= target and offset > start:
                        spans.append(("lines", start, offset, before, ""))
                        start, before, target = offset, messages, offset + unit_bytes
                    messages += 1
                    prev_blank = False
                else:
                    prev_blank = line.strip(b"\r\n") == b""
    except (OSError, pa.ArrowException) as e:
        return [("unreadable", 0, 0, 0, f"{type(e).__name__}: {e}"[:500])]
    spans.append(("lines", start, size, before, ""))
    return spans


def _parquet_spans(path: str, unit_bytes: int) -> list[tuple]:
    """Runs of row groups of about `unit_bytes` (compressed), from the file's footer."""
    import pyarrow.parquet as pq

    fs, p = _fs(path)
    try:
        with fs.open_input_file(p) as f:
            meta = pq.ParquetFile(f).metadata
    except (OSError, pa.ArrowException) as e:
        return [("unreadable", 0, 0, 0, f"{type(e).__name__}: {e}"[:500])]
    spans, start, size, first_row = [], 0, 0, 0
    rows = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        size += group.total_compressed_size if hasattr(group, "total_compressed_size") else group.total_byte_size
        rows += group.num_rows
        if size >= unit_bytes and g + 1 < meta.num_row_groups:
            spans.append(("parquet", start, g + 1, first_row, ""))
            start, size, first_row = g + 1, 0, rows
    spans.append(("parquet", start, meta.num_row_groups, first_row, ""))
    return spans


def text_key(text: str) -> str:
    """Identity of a communication for duplicate detection: SHA-256 of its text with whitespace runs collapsed."""
    return hashlib.sha256(collapse_ws(text).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def read_units(batch: pa.Table, reading: Reading) -> Iterator[pa.Table]:
    """Ray Data UDF: planned units (rows of `Unit.as_dict()`) -> their archive rows in `STREAM_SCHEMA`, each
    unit ending with its marker row. Streams: at most one block of rows is held at a time."""
    for unit in (Unit.from_dict(row) for row in batch.to_pylist()):
        count = 0
        for table in unit_tables(unit, reading):
            count += len(table)
            keys = [text_key(t) if not r else "" for t, r in zip(table["text"].to_pylist(), table["reason"].to_pylist())]
            yield _with_unit(table, keys, unit.index, -1)
        end = pa.Table.from_pylist([{"id": "", "text": "", "file": unit.path, "line": 0, "reason": "", "detail": ""}],
                                   schema=ARCHIVE_SCHEMA)
        yield _with_unit(end, [""], unit.index, count)


def _with_unit(table: pa.Table, keys: list[str], unit: int, unit_rows: int) -> pa.Table:
    n = len(table)
    return (table.append_column("key", pa.array(keys, pa.string()))
            .append_column("unit", pa.array([unit] * n, pa.int64()))
            .append_column("unit_rows", pa.array([unit_rows] * n, pa.int64())))


def unit_tables(unit: Unit, reading: Reading) -> Iterator[pa.Table]:
    """The archive rows of one unit (`ARCHIVE_SCHEMA` blocks), every row of it accounted for: a file that
    cannot be opened or read is a reject with its reason and detail."""
    from pipeline.reader import _gunzip

    if unit.kind == "unknown":
        yield reject_table(unit.path, "unknown_format", unit.detail)
        return
    if unit.kind == "unreadable":
        yield reject_table(unit.path, "unreadable_file", unit.detail or "its layout could not be read")
        return
    if unit.kind == "parquet":
        yield from _parquet_tables(unit, reading)
        return
    if unit.kind == "eml":
        for path in unit.files:
            f = _open(path, stream=True)
            if isinstance(f, Exception):
                yield reject_table(path, "unreadable_file", f"{type(f).__name__}: {f}", line=1)
                continue
            with f:
                yield read_eml(_gunzip(f) if path.endswith(".gz") else file_chunks(f), path, reading)
        return
    f = _open(unit.path, stream=unit.kind == "stream")
    if isinstance(f, Exception):
        yield reject_table(unit.path, "unreadable_file", f"{type(f).__name__}: {f}")
        return
    with f:
        if unit.kind == "stream":  # gzip is decoded here, not by Arrow: Arrow fails a truncated stream whole
            chunks = _gunzip(f) if unit.path.endswith(".gz") else file_chunks(f)
        else:
            f.seek(unit.start)
            chunks = _range_chunks(f, unit.end - unit.start, CHUNK_BYTES)
        yield from read_stream(unit.format, chunks, unit.path, reading, unit.first_line, unit.start,
                               whole_file=unit.start == 0)


def _open(path: str, stream: bool):
    """An Arrow file (random access) or stream (compression other than gzip decoded by Arrow), or the error."""
    fs, p = _fs(path)
    try:
        if stream:
            return fs.open_input_stream(p, compression=None if p.endswith(".gz") else "detect")
        return fs.open_input_file(p)
    except (OSError, pa.ArrowException) as e:
        return e


def _range_chunks(f, length: int, chunk: int) -> Iterator[bytes]:
    left = length
    while left > 0 and (data := f.read(min(chunk, left))):
        left -= len(data)
        yield data


def _parquet_tables(unit: Unit, reading: Reading) -> Iterator[pa.Table]:
    """Rows of row groups [start, end) of a Parquet file (sources.read_parquet_groups)."""
    import pyarrow.parquet as pq

    f = _open(unit.path, stream=False)
    if isinstance(f, Exception):
        yield reject_table(unit.path, "unreadable_file", f"{type(f).__name__}: {f}")
        return
    with f:
        try:
            yield from read_parquet_groups(pq.ParquetFile(f), unit.path, range(unit.start, unit.end),
                                           unit.first_line, reading)
        except (OSError, ValueError, pa.ArrowException) as e:  # a corrupt page: the rows before it are kept
            yield reject_table(unit.path, "unreadable_file", f"part-way: {type(e).__name__}: {e}", line=unit.first_line)


def read_archive(cfg) -> "ray.data.Dataset":  # noqa: F821
    """The archive `cfg.paths` names (a ScoreConfig) read through its units as a streaming Ray Dataset of
    `ARCHIVE_SCHEMA` rows, rejects included (no duplicate folding, no scoring): what the job reads."""
    import ray.data

    files = list_inputs(cfg.paths)
    if not files:
        raise FileNotFoundError(f"paths: no files under {', '.join(cfg.paths)}")
    units = [u.as_dict() for u in plan_units(files, cfg.unit_bytes, cfg.format)]
    reading = Reading.from_config(cfg)
    return ray.data.from_items(units, override_num_blocks=min(len(units), 1000)).map_batches(
        _archive_rows, fn_kwargs=dict(reading=reading), batch_size=1, batch_format="pyarrow")


def _archive_rows(batch: pa.Table, reading: Reading) -> Iterator[pa.Table]:
    for unit in map(Unit.from_dict, batch.to_pylist()):
        yield from unit_tables(unit, reading)
