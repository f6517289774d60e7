"""Units of work of archive scoring: the input files listed, cut into units, each read as archive rows.

A unit is what the job commits at once and skips on resume (pipeline/score/ledger.py): a byte range of
a plain JSON Lines file cut at line starts (about `unit_bytes` each, lines numbered as in the whole
file), a whole compressed file (a stream cannot be entered midway), or a run of row groups of a Parquet
file. The plan is made once per output folder and kept in its run record, so a resumed run reads exactly
the units the first run planned. Reading a unit yields its rows in `STREAM_SCHEMA` (unreadable lines as
rejects with a reason) and ends with one marker row that gives the unit's row count, so the driver knows
when every row of a unit has been accounted for.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Iterator

import pyarrow as pa

from pipeline.schema import collapse_ws

COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
PARQUET = (".parquet", ".pq")
# Rows of the archive as they leave the readers; `key` identifies the normalised text (duplicates share it),
# `unit_rows` is -1 on a communication and the unit's row count on its end marker (id '').
STREAM_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("file", pa.string()), ("line", pa.int64()),
                            ("reason", pa.string()), ("key", pa.string()), ("unit", pa.int64()),
                            ("unit_rows", pa.int64())])


@dataclass(frozen=True)
class InputFile:
    """One listed input file and what identifies its content (a changed size or mtime is a changed archive)."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Unit:
    """A unit of work: `kind` 'lines' (bytes [start, end) of a plain file, first line numbered `first_line` + 1),
    'stream' (a whole compressed file), 'parquet' (row groups [start, end)) or 'unreadable' (a file whose
    layout could not be read: one reject, `detail` says why)."""

    index: int
    path: str
    kind: str
    start: int = 0
    end: int = 0
    first_line: int = 0
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


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


def plan_units(files: list[InputFile], unit_bytes: int) -> list[Unit]:
    """Cut the listed files into units of about `unit_bytes` (see the module docstring). A plain file larger
    than one unit is read once here to find line starts and count lines; Parquet files' footers are read."""
    units: list[Unit] = []
    for f in files:
        name = f.path.lower()
        if name.endswith(PARQUET):
            spans = _parquet_spans(f.path, unit_bytes)
        elif name.endswith(COMPRESSED):
            spans = [("stream", 0, f.size, 0, "")]
        elif f.size <= unit_bytes:
            spans = [("lines", 0, f.size, 0, "")]
        else:
            spans = _line_spans(f.path, f.size, unit_bytes)
        units += [Unit(len(units) + i, f.path, *s) for i, s in enumerate(spans)]
    return units


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


def read_units(batch: pa.Table, text_field: str, id_field: str, max_chars: int, max_line_bytes: int) -> Iterator[pa.Table]:
    """Ray Data UDF: planned units (rows of `Unit.as_dict()`) -> their archive rows in `STREAM_SCHEMA`, each
    unit ending with its marker row. Streams: at most ROWS_PER_BLOCK rows are held at a time."""
    for unit in (Unit(**row) for row in batch.to_pylist()):
        count = 0
        for table in _unit_tables(unit, text_field, id_field, max_chars, max_line_bytes):
            count += len(table)
            keys = [text_key(t) if not r else "" for t, r in zip(table["text"].to_pylist(), table["reason"].to_pylist())]
            yield _with_unit(table, keys, unit.index, -1)
        end = pa.Table.from_pylist([{"id": "", "text": "", "file": unit.path, "line": 0, "reason": ""}])
        yield _with_unit(end, [""], unit.index, count)


def _with_unit(table: pa.Table, keys: list[str], unit: int, unit_rows: int) -> pa.Table:
    n = len(table)
    return pa.table({"id": table["id"], "text": table["text"], "file": table["file"], "line": table["line"],
                     "reason": table["reason"], "key": pa.array(keys, pa.string()),
                     "unit": pa.array([unit] * n, pa.int64()), "unit_rows": pa.array([unit_rows] * n, pa.int64())},
                    schema=STREAM_SCHEMA)


def _unit_tables(unit: Unit, text_field: str, id_field: str, max_chars: int, max_line_bytes: int) -> Iterator[pa.Table]:
    from pipeline.reader import CHUNK_BYTES, _gunzip, line_tables
    from pipeline.score.run import archive_rows

    if unit.kind == "unreadable":
        yield _rejects(unit.path, "unreadable_file")
        return
    if unit.kind == "parquet":
        yield from _parquet_tables(unit, text_field, id_field, max_chars)
        return
    fs, p = _fs(unit.path)
    try:  # gzip is decoded here, not by Arrow: Arrow fails a truncated stream whole, losing the good lines
        f = (fs.open_input_stream(p, compression=None if p.endswith(".gz") else "detect") if unit.kind == "stream"
             else fs.open_input_file(p))
    except (OSError, pa.ArrowException):
        yield _rejects(unit.path, "unreadable_file")
        return
    with f:
        if unit.kind == "stream":
            chunks = _gunzip(f) if p.endswith(".gz") else iter(lambda: f.read(CHUNK_BYTES), b"")
        else:
            f.seek(unit.start)
            chunks = _range_chunks(f, unit.end - unit.start, CHUNK_BYTES)
        for lines in line_tables(chunks, unit.path, max_line_bytes, unit.first_line, whole_file=unit.start == 0):
            yield archive_rows(lines, text_field, id_field, max_chars)


def _range_chunks(f, length: int, chunk: int) -> Iterator[bytes]:
    left = length
    while left > 0 and (data := f.read(min(chunk, left))):
        left -= len(data)
        yield data


def _rejects(path: str, reason: str) -> pa.Table:
    from pipeline.score.run import ARCHIVE_SCHEMA

    return pa.Table.from_pylist([{"id": f"{os.path.basename(path)}:0", "text": "", "file": path, "line": 0,
                                  "reason": reason}], schema=ARCHIVE_SCHEMA)


def _parquet_tables(unit: Unit, text_field: str, id_field: str, max_chars: int) -> Iterator[pa.Table]:
    """Rows of row groups [start, end) of a Parquet file; `line` is the row's 1-based position in the file."""
    import pyarrow.parquet as pq

    from pipeline.score.run import ARCHIVE_SCHEMA

    fs, p = _fs(unit.path)
    name, line = os.path.basename(unit.path), unit.first_line
    with fs.open_input_file(p) as f:
        pf = pq.ParquetFile(f)
        columns = [c for c in (id_field, text_field) if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=2048, row_groups=range(unit.start, unit.end), columns=columns):
            n = batch.num_rows
            texts = batch.column(text_field).to_pylist() if text_field in columns else [None] * n
            ids = batch.column(id_field).to_pylist() if id_field in columns else [None] * n
            out = []
            for i, (rid, text) in enumerate(zip(ids, texts)):
                line += 1
                reason = ("missing_text" if not isinstance(text, str) or not text.strip()
                          else "too_long" if len(text) > max_chars else "")
                out.append({"id": f"{name}:{line}" if rid is None else str(rid), "text": "" if reason else text,
                            "file": unit.path, "line": line, "reason": reason})
            yield pa.Table.from_pylist(out, schema=ARCHIVE_SCHEMA)
