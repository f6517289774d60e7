"""Archive readers for scoring: JSON Lines, Parquet, CSV/TSV, .eml files and mbox archives read into one row
schema, a stream of bytes (or Parquet row groups) at a time.

Every reader yields Arrow tables of `ARCHIVE_SCHEMA`: id, text, timestamp, participants, channel, file, line,
offset, reason, detail. A row that cannot be scored keeps its `reason` (invalid_json, missing_text, too_long,
attachments_only, bad_csv_row, unreadable_file ...) with a detail and an empty text, so the job counts it:
read = scored + duplicates + rejected. JSON Lines, CSV and Parquet are mapped by the config's `fields`; e-mail
by its headers (pipeline/score/mail.py). Each file's format comes from its extension, or from `format` for all.
What part of a file is read at once (a unit of work) is decided by pipeline/score/units.py, which calls these
readers: memory is bounded by a block (ROWS_PER_BLOCK rows or BYTES_PER_BLOCK of text), never a whole file.

mbox is split here, line by line from the stream (`From ` separators after a blank line, `>From ` unescaped),
rather than by `mailbox.mbox`, which needs a local path and indexes the whole file first; every entry is then
parsed by the `email` package like an .eml file.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath

import pyarrow as pa

from pipeline.reader import CHUNK_BYTES, line_tables
from pipeline.score.config import FieldMap, ScoreConfig
from pipeline.score.mail import read_mail

log = logging.getLogger(__name__)

ARCHIVE_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("timestamp", pa.string()), ("participants", pa.list_(pa.string())),
    ("channel", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("offset", pa.int64()),
    ("reason", pa.string()), ("detail", pa.string()),
])
EXTENSIONS = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "txt": "jsonl", "parquet": "parquet",
              "pq": "parquet", "csv": "csv", "tsv": "csv", "eml": "eml", "mbox": "mbox", "mbx": "mbox"}
COMPRESSED = ("gz", "bz2", "zst", "lz4")
ROWS_PER_BLOCK = 1024
BYTES_PER_BLOCK = 32 << 20  # a block also ends at this much text: long messages make few rows large
FROM_LINE = re.compile(rb"^From \S")  # an mbox separator (when it follows a blank line or starts the file)
_ESCAPED_FROM = re.compile(rb"^>+From ")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Reading:
    """How the archive's files are read: the config's format, field map and size caps (sent to the read tasks)."""

    format: str
    fields: FieldMap
    max_bytes: int
    max_email_bytes: int

    @classmethod
    def from_config(cls, cfg: ScoreConfig) -> "Reading":
        return cls(cfg.format, cfg.fields, cfg.max_bytes, cfg.max_email_bytes)

    @property
    def max_line_bytes(self) -> int:
        """Longest JSON Lines / CSV line carried: JSON escapes can make a line several times its text's bytes
        (\\uXXXX for one character); a longer line is a too_long reject without its bytes."""
        return self.max_bytes * 6 + (64 << 10)


def file_format(path: str, fmt: str) -> str | None:
    """The format `path` is read as: `fmt` unless 'auto', else by extension (a compression suffix skipped);
    None when the extension names no format."""
    if fmt != "auto":
        return fmt
    suffixes = [s.lstrip(".").lower() for s in PurePosixPath(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def is_compressed(path: str) -> bool:
    """The file is a compressed stream (read whole: a stream cannot be entered midway)."""
    return PurePosixPath(path).suffix.lstrip(".").lower() in COMPRESSED


class Rows:
    """Rows of one file gathered into Arrow blocks of bounded size."""

    def __init__(self, path: str):
        self.path, self.rows, self.bytes = path, [], 0

    def add(self, line: int, text: str = "", reason: str = "", detail: str = "", id: str | None = None,
            timestamp: str | None = None, participants: list[str] | None = None, channel: str | None = None,
            offset: int | None = None) -> pa.Table | None:
        """Add one row; returns a full block when one is ready."""
        name = PurePosixPath(self.path).name
        self.rows.append({"id": id or f"{name}:{line}", "text": "" if reason else text, "timestamp": timestamp,
                          "participants": participants, "channel": channel, "file": self.path, "line": line,
                          "offset": offset, "reason": reason, "detail": detail[:500]})
        self.bytes += len(text)
        return self.flush() if len(self.rows) >= ROWS_PER_BLOCK or self.bytes >= BYTES_PER_BLOCK else None

    def flush(self) -> pa.Table | None:
        """The rows gathered so far as one block (None when there are none)."""
        if not self.rows:
            return None
        table = pa.Table.from_pylist(self.rows, schema=ARCHIVE_SCHEMA)
        self.rows, self.bytes = [], 0
        return table


def reject_table(path: str, reason: str, detail: str, line: int = 0) -> pa.Table:
    """One file-level reject row (unknown_format, unreadable_file ...) in `ARCHIVE_SCHEMA`."""
    rows = Rows(path)
    rows.add(line, reason=reason, detail=detail)
    return rows.flush()


def _as_text(value) -> str | None:
    if value is None or value == "":  # an empty CSV cell is an absent value
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _participants(value) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, str):
        value = re.split(r"[;,]", value)
    if not isinstance(value, (list, tuple)) and not hasattr(value, "tolist"):
        value = [value]
    out = [str(p).strip() for p in (value.tolist() if hasattr(value, "tolist") else value) if p is not None]
    return [p for p in out if p]


def map_record(record: dict, fields: FieldMap, max_bytes: int) -> dict:
    """One JSON object / CSV row / Parquet row -> the archive row's fields (id, text, timestamp, participants,
    channel, reason, detail) by the field map; a missing text or one over `max_bytes` gets its reason."""
    text = record.get(fields.text)
    rid = record.get(fields.id)
    out = {"id": None if rid is None or rid == "" else str(rid), "timestamp": _as_text(record.get(fields.timestamp)),
           "participants": _participants(record.get(fields.participants)),
           "channel": _as_text(record.get(fields.channel)), "text": text if isinstance(text, str) else "",
           "reason": "", "detail": ""}
    if not isinstance(text, str) or not text.strip():
        out["reason"], out["detail"] = "missing_text", f"no text in {fields.text!r}"
    elif (n := len(text.encode("utf-8", "surrogatepass"))) > max_bytes:
        out["reason"], out["detail"] = "too_long", f"{n} bytes > max_bytes={max_bytes}"
    return out


# -- streams: JSON Lines, CSV, mbox ---------------------------------------------------------------------------
def read_stream(fmt: str, chunks: Iterator[bytes], path: str, reading: Reading, first: int = 0, base: int = 0,
                whole_file: bool = True) -> Iterator[pa.Table]:
    """Blocks of `ARCHIVE_SCHEMA` rows from byte `chunks` of `path` (all of it, or a range that starts at a line /
    message start at byte `base`, with `first` lines / messages before it). A stream that fails part-way
    (truncated gzip, an I/O error) keeps the rows read and ends with an unreadable_file / truncated_gzip reject."""
    rows = Rows(path)
    read = {"jsonl": _jsonl, "csv": _csv, "mbox": _mbox}[fmt]
    try:
        yield from read(chunks, path, reading, rows, first, base, whole_file)
    except (OSError, EOFError, ValueError, zlib.error, pa.ArrowException) as e:
        log.warning("%s: unreadable part-way: %s", path, e)
        reason = "truncated_gzip" if isinstance(e, EOFError) else "unreadable_file"
        rows.add(0, reason=reason, detail=f"part-way: {type(e).__name__}: {e}")
    if (last := rows.flush()) is not None:
        yield last


def _jsonl(chunks, path, reading: Reading, rows: Rows, first: int, base: int, whole_file: bool) -> Iterable[pa.Table]:
    for lines in line_tables(chunks, path, reading.max_line_bytes, first, whole_file):
        for line in lines.to_pylist():
            if line["error"] or line["oversize"]:
                reason = line["error"] or "too_long"
                detail = line["detail"] or f"line of {line['oversize']} bytes > max_bytes={reading.max_bytes}"
                block = rows.add(line["line"], reason=reason, detail=detail)
            else:
                try:
                    record = json.loads(line["raw"].decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    block = rows.add(line["line"], reason="invalid_json", detail=str(e))
                else:
                    mapped = (map_record(record, reading.fields, reading.max_bytes) if isinstance(record, dict) else
                              {"reason": "invalid_json", "detail": f"a JSON {type(record).__name__}, not an object"})
                    block = rows.add(line["line"], **mapped)
            if block is not None:
                yield block


def _csv(chunks, path, reading: Reading, rows: Rows, first: int, base: int, whole_file: bool) -> Iterable[pa.Table]:
    # The csv module's field limit is per process; raise it to the cap so an over-long text is a too_long
    # reject from map_record, not a parser error.
    csv.field_size_limit(max(csv.field_size_limit(), reading.max_bytes * 4 + 1))
    delimiter = "\t" if re.search(r"\.tsv(\.\w+)?$", path, re.I) else ","
    reader = csv.reader(_decoded_lines(chunks, reading.max_line_bytes), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        rows.add(0, reason="empty_file", detail="0 bytes of data")
        return
    if reading.fields.text not in header:
        rows.add(1, reason="missing_column", detail=f"no column {reading.fields.text!r} (header {header[:20]}); "
                                                    "set fields.text")
        return
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            block = rows.add(start, reason="bad_csv_row", detail=str(e))
        else:
            if not values:
                continue  # a blank line is no record
            if len(values) != len(header):
                block = rows.add(start, reason="bad_csv_row", detail=f"{len(values)} fields, the header has {len(header)}")
            elif any(_SURROGATE.search(v) for v in values):
                block = rows.add(start, reason="invalid_utf8", detail="bytes that are not UTF-8")
            else:
                block = rows.add(start, **map_record(dict(zip(header, values)), reading.fields, reading.max_bytes))
        if block is not None:
            yield block


def _mbox(chunks, path, reading: Reading, rows: Rows, first: int, base: int, whole_file: bool) -> Iterable[pa.Table]:
    name = PurePosixPath(path).name
    n, start, size, kept, prev_blank = first, base, 0, [], True
    opened = False  # an entry has started in this range
    for offset, line in raw_lines(chunks, reading.max_email_bytes, base):
        if prev_blank and FROM_LINE.match(line):
            if opened and (block := _mbox_entry(rows, reading, kept, size, n, start, name)) is not None:
                yield block
            n, start, size, kept, opened = n + 1, offset, 0, [], True
            prev_blank = False
            continue
        prev_blank = line.strip(b"\r\n") == b""
        if not opened:  # bytes before the first separator: not an mbox
            rows.add(0, reason="not_mbox", detail="does not start with a 'From ' line")
            return
        size += len(line)
        if size <= reading.max_email_bytes:
            kept.append(line[1:] if _ESCAPED_FROM.match(line) else line)
    if opened and (block := _mbox_entry(rows, reading, kept, size, n, start, name)) is not None:
        yield block
    if not opened and whole_file:
        rows.add(0, reason="empty_file", detail="0 bytes of data")


def _mbox_entry(rows: Rows, reading: Reading, kept: list[bytes], size: int, n: int, offset: int, name: str):
    if size > reading.max_email_bytes:
        return rows.add(n, reason="message_too_large", detail=f"{size} bytes > max_email_bytes="
                        f"{reading.max_email_bytes}", offset=offset)
    raw = b"".join(kept)
    if raw.endswith(b"\n\n"):  # the blank line before the next separator belongs to the mbox, not the message
        raw = raw[:-1]
    return mail_row(rows, reading, raw, n, offset, f"{name}:{n}")


# -- e-mail ---------------------------------------------------------------------------------------------------
def read_eml(chunks: Iterator[bytes], path: str, reading: Reading) -> pa.Table:
    """One .eml file (its byte `chunks`) as one row: the e-mail, or a message_too_large / unreadable reject."""
    rows, name, raw = Rows(path), PurePosixPath(path).name, bytearray()
    try:
        for chunk in chunks:
            raw += chunk
            if len(raw) > reading.max_email_bytes:
                rows.add(1, reason="message_too_large", detail=f"over max_email_bytes={reading.max_email_bytes}",
                         id=name)
                return rows.flush()
    except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
        rows.add(1, reason="unreadable_file", detail=f"{type(e).__name__}: {e}", id=name)
        return rows.flush()
    mail_row(rows, reading, bytes(raw), 1, 0, name)
    return rows.flush()


def mail_row(rows: Rows, reading: Reading, raw: bytes, n: int, offset: int, fallback_id: str):
    """Add one e-mail's row (parsed by pipeline/score/mail.py) to `rows`; returns a full block when one is ready."""
    try:
        mail = read_mail(raw, fallback_id)
    except Exception as e:  # noqa: BLE001 - the email package's odd failures are one message's reject
        return rows.add(n, reason="unreadable_message", detail=f"{type(e).__name__}: {e}", id=fallback_id,
                        offset=offset)
    reason, detail = mail.reason, mail.detail
    if not reason and (size := len(mail.text.encode("utf-8", "surrogatepass"))) > reading.max_bytes:
        reason, detail = "too_long", f"{size} bytes > max_bytes={reading.max_bytes}"
    return rows.add(n, text=mail.text, reason=reason, detail=detail, id=mail.id, timestamp=mail.timestamp,
                    participants=mail.participants, channel="email", offset=offset)


# -- Parquet --------------------------------------------------------------------------------------------------
def read_parquet_groups(pf, path: str, groups: range, first_row: int, reading: Reading) -> Iterator[pa.Table]:
    """Rows of row groups `groups` of an open `pyarrow.parquet.ParquetFile`; `line` is the row's 1-based position
    in the file (`first_row` rows come before the first group). A file without the text column is one
    missing_column reject (in its first unit only)."""
    rows = Rows(path)
    names = pf.schema_arrow.names
    if reading.fields.text not in names:
        if first_row == 0:
            rows.add(0, reason="missing_column", detail=f"no column {reading.fields.text!r} (has {names[:20]}); "
                                                         "set fields.text")
            yield rows.flush()
        return
    wanted = sorted({c for c in reading.fields.model_dump().values() if c in names})
    n = first_row
    for batch in pf.iter_batches(batch_size=ROWS_PER_BLOCK, row_groups=groups, columns=wanted):
        for record in batch.to_pylist():
            n += 1
            if (block := rows.add(n, **map_record(record, reading.fields, reading.max_bytes))) is not None:
                yield block
    if (last := rows.flush()) is not None:
        yield last


# -- bytes to lines -------------------------------------------------------------------------------------------
def raw_lines(chunks: Iterator[bytes], limit: int, base: int = 0) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line with its newline) for every line of a stream of byte `chunks` whose first byte is at
    `base`; a line longer than `limit` bytes comes in pieces of at most about `limit` (so memory stays
    bounded; its reader rejects it)."""
    pending, offset = b"", base
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield offset, line + b"\n"
            offset += len(line) + 1
        if len(pending) > limit:
            yield offset, pending
            offset, pending = offset + len(pending), b""
    if pending:
        yield offset, pending


def _decoded_lines(chunks: Iterator[bytes], limit: int) -> Iterator[str]:
    """Lines of a byte stream as text (UTF-8, a leading BOM dropped); undecodable bytes become lone surrogates
    that the CSV reader rejects row by row instead of failing the file."""
    for offset, line in raw_lines(chunks, limit):
        text = line.decode("utf-8", "surrogateescape")
        yield text.removeprefix("\ufeff") if offset == 0 else text


def file_chunks(f, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """An open Arrow stream's bytes in chunks."""
    return iter(lambda: f.read(chunk), b"")


__all__ = ["ARCHIVE_SCHEMA", "COMPRESSED", "EXTENSIONS", "Reading", "Rows", "file_format", "is_compressed",
           "map_record", "mail_row", "raw_lines", "read_eml", "read_parquet_groups", "read_stream", "reject_table"]
