"""Archive readers for scoring: JSON Lines, Parquet, CSV/TSV, .eml files and mbox archives as one Ray Data
source with one row schema.

`ArchiveSource` streams every file in blocks (never a whole archive, nor a whole file of many messages, in
memory) and yields rows of `ARCHIVE_SCHEMA`: id, text, timestamp, participants, channel, file, line, offset,
reason, detail. A row that cannot be scored keeps its `reason` (invalid_json, missing_text, too_long,
attachments_only, bad_csv_row, unreadable_file ...) with a detail and an empty text, so the job counts it:
read = scored + duplicates + rejected. JSON Lines, CSV and Parquet are mapped by the config's `fields`; e-mail
by its headers (pipeline/score/mail.py). Each file's format comes from its extension, or from `format` for all.

mbox is split here, line by line from the stream (`From ` separators, `>From ` unescaped), rather than by
`mailbox.mbox`, which needs a local path and indexes the whole file first; every entry is then parsed by the
`email` package like an .eml file.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.datasource import FileBasedDatasource

from pipeline.reader import CHUNK_BYTES, JsonLinesSource, _Unopened
from pipeline.score.config import FieldMap, ScoreConfig
from pipeline.score.mail import read_mail

log = logging.getLogger(__name__)

ARCHIVE_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("timestamp", pa.string()), ("participants", pa.list_(pa.string())),
    ("channel", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("offset", pa.int64()),
    ("reason", pa.string()), ("detail", pa.string()),
])
EXTENSIONS = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "txt": "jsonl", "parquet": "parquet",
              "csv": "csv", "tsv": "csv", "eml": "eml", "mbox": "mbox", "mbx": "mbox"}
COMPRESSED = ("gz", "bz2", "zst", "lz4")
ROWS_PER_BLOCK = 1024
BYTES_PER_BLOCK = 32 << 20  # a block also ends at this much text: long messages make few rows large
_FROM_LINE = re.compile(rb"^From \S")
_ESCAPED_FROM = re.compile(rb"^>+From ")


def file_format(path: str, fmt: str) -> str | None:
    """The format `path` is read as: `fmt` unless 'auto', else by extension (a compression suffix skipped);
    None when the extension names no format."""
    if fmt != "auto":
        return fmt
    suffixes = [s.lstrip(".").lower() for s in PurePosixPath(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


class _Rows:
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
        if not self.rows:
            return None
        table = pa.Table.from_pylist(self.rows, schema=ARCHIVE_SCHEMA)
        self.rows, self.bytes = [], 0
        return table


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


class ArchiveSource(JsonLinesSource):
    """Ray Data datasource: every file of the archive, each read as its format, as `ARCHIVE_SCHEMA` rows."""

    _FILE_EXTENSIONS = None

    def __init__(self, paths, fmt: str, fields: FieldMap, max_bytes: int, max_email_bytes: int, **kwargs):
        """`paths` as Ray's readers take them; `fmt` a ScoreConfig.format value. Raises ValueError (Ray) when the
        paths hold no file of a known format."""
        known = sorted({*EXTENSIONS, *COMPRESSED}) if fmt == "auto" else None
        # JSON escapes can make a line several times its text's bytes (\uXXXX for one character)
        super().__init__(paths, max_line_bytes=max_bytes * 6 + (64 << 10), file_extensions=known, **kwargs)
        self.fmt, self.fields, self.max_bytes, self.max_email_bytes = fmt, fields, max_bytes, max_email_bytes

    def resolve_compression(self, path: str, open_args: dict) -> str | None:
        if file_format(path, self.fmt) == "jsonl":  # gzip kept whole-line-accurate by JsonLinesSource
            return super().resolve_compression(path, open_args)
        return FileBasedDatasource.resolve_compression(self, path, open_args)

    def _open_input_source(self, filesystem, path: str, **open_args):
        if file_format(path, self.fmt) != "parquet":
            return super()._open_input_source(filesystem, path, **open_args)
        try:  # Parquet needs random access (footer first), not a stream
            return filesystem.open_input_file(path)
        except (OSError, pa.ArrowException) as e:
            return _Unopened(e)

    def _read_stream(self, f, path: str) -> Iterator[pa.Table]:
        fmt = file_format(path, self.fmt)
        rows = _Rows(path)
        if isinstance(f, _Unopened) or fmt is None:
            reason, detail = (("unknown_format", f"no format for this extension; set format: to read it")
                              if fmt is None else ("unreadable_file", f"{type(f.error).__name__}: {f.error}"))
            rows.add(0, reason=reason, detail=detail)
            yield rows.flush()
            return
        read = {"jsonl": self._jsonl, "parquet": self._parquet, "csv": self._csv, "eml": self._eml,
                "mbox": self._mbox}[fmt]
        try:
            for block in read(f, path, rows):
                yield block
        except (OSError, EOFError, ValueError, pa.ArrowException) as e:
            # A file that fails part-way (truncated stream, corrupt Parquet page): keep what was read, name the loss.
            log.warning("%s: unreadable part-way: %s", path, e)
            rows.add(0, reason="unreadable_file", detail=f"part-way: {type(e).__name__}: {e}")
        if (last := rows.flush()) is not None:
            yield last

    # -- formats ----------------------------------------------------------------------------------------------
    def _jsonl(self, f, path: str, rows: _Rows) -> Iterable[pa.Table]:
        for lines in super()._read_stream(f, path):
            for line in lines.to_pylist():
                if line["error"] or line["oversize"]:
                    reason = line["error"] or "too_long"
                    detail = line["detail"] or f"line of {line['oversize']} bytes > max_bytes={self.max_bytes}"
                    block = rows.add(line["line"], reason=reason, detail=detail)
                else:
                    try:
                        record = json.loads(line["raw"].decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError) as e:
                        block = rows.add(line["line"], reason="invalid_json", detail=str(e))
                    else:
                        mapped = (map_record(record, self.fields, self.max_bytes) if isinstance(record, dict) else
                                  {"reason": "invalid_json", "detail": f"a JSON {type(record).__name__}, "
                                                                         "not an object"})
                        block = rows.add(line["line"], **mapped)
                if block is not None:
                    yield block

    def _parquet(self, f, path: str, rows: _Rows) -> Iterable[pa.Table]:
        pf = pq.ParquetFile(f)
        if self.fields.text not in pf.schema_arrow.names:
            rows.add(0, reason="missing_column", detail=f"no column {self.fields.text!r} "
                                                        f"(has {pf.schema_arrow.names[:20]}); set fields.text")
            return
        wanted = [c for c in self.fields.model_dump().values() if c in pf.schema_arrow.names]
        n = 0
        for batch in pf.iter_batches(batch_size=ROWS_PER_BLOCK, columns=sorted(set(wanted))):
            for record in batch.to_pylist():
                n += 1
                if (block := rows.add(n, **map_record(record, self.fields, self.max_bytes))) is not None:
                    yield block

    def _csv(self, f, path: str, rows: _Rows) -> Iterable[pa.Table]:
        # The csv module's field limit is per process; raise it to the cap so an over-long text is a too_long
        # reject from map_record, not a parser error.
        csv.field_size_limit(max(csv.field_size_limit(), self.max_bytes * 4 + 1))
        delimiter = "\t" if re.search(r"\.tsv(\.\w+)?$", path, re.I) else ","
        lines = _decoded_lines(f, self.max_line_bytes)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            rows.add(0, reason="empty_file", detail="0 bytes of data")
            return
        if self.fields.text not in header:
            rows.add(1, reason="missing_column", detail=f"no column {self.fields.text!r} (header {header[:20]}); "
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
                    block = rows.add(start, reason="bad_csv_row",
                                     detail=f"{len(values)} fields, the header has {len(header)}")
                elif any(_SURROGATE.search(v) for v in values):
                    block = rows.add(start, reason="invalid_utf8", detail="bytes that are not UTF-8")
                else:
                    block = rows.add(start, **map_record(dict(zip(header, values)), self.fields, self.max_bytes))
            if block is not None:
                yield block

    def _eml(self, f, path: str, rows: _Rows) -> Iterable[pa.Table]:
        raw = f.read(self.max_email_bytes + 1)
        name = PurePosixPath(path).name
        if len(raw) > self.max_email_bytes:
            rows.add(1, reason="message_too_large", detail=f"over max_email_bytes={self.max_email_bytes}", id=name)
        else:
            self._mail(rows, raw, 1, 0, name)
        return ()

    def _mbox(self, f, path: str, rows: _Rows) -> Iterable[pa.Table]:
        name = PurePosixPath(path).name
        n, start, size, kept, prev_blank = 0, 0, 0, [], True
        for offset, line in _raw_lines(f, self.max_email_bytes):
            if prev_blank and _FROM_LINE.match(line):
                if n and (block := self._mbox_entry(rows, kept, size, n, start, name)) is not None:
                    yield block
                n, start, size, kept = n + 1, offset, 0, []
                prev_blank = False
                continue
            prev_blank = line.strip(b"\r\n") == b""
            if not n:  # bytes before the first separator: not an mbox
                rows.add(0, reason="not_mbox", detail="does not start with a 'From ' line")
                return
            size += len(line)
            if size <= self.max_email_bytes:
                kept.append(line[1:] if _ESCAPED_FROM.match(line) else line)
        if n and (block := self._mbox_entry(rows, kept, size, n, start, name)) is not None:
            yield block
        if not n:
            rows.add(0, reason="empty_file", detail="0 bytes of data")

    def _mbox_entry(self, rows: _Rows, kept: list[bytes], size: int, n: int, offset: int, name: str):
        if size > self.max_email_bytes:
            return rows.add(n, reason="message_too_large", detail=f"{size} bytes > max_email_bytes="
                            f"{self.max_email_bytes}", offset=offset)
        raw = b"".join(kept)
        if raw.endswith(b"\n\n"):  # the blank line before the next separator belongs to the mbox, not the message
            raw = raw[:-1]
        return self._mail(rows, raw, n, offset, f"{name}:{n}")

    def _mail(self, rows: _Rows, raw: bytes, n: int, offset: int, fallback_id: str):
        try:
            mail = read_mail(raw, fallback_id)
        except Exception as e:  # noqa: BLE001 - the email package's odd failures are one message's reject
            return rows.add(n, reason="unreadable_message", detail=f"{type(e).__name__}: {e}", id=fallback_id,
                            offset=offset)
        reason, detail = mail.reason, mail.detail
        if not reason and (size := len(mail.text.encode("utf-8", "surrogatepass"))) > self.max_bytes:
            reason, detail = "too_long", f"{size} bytes > max_bytes={self.max_bytes}"
        return rows.add(n, text=mail.text, reason=reason, detail=detail, id=mail.id, timestamp=mail.timestamp,
                        participants=mail.participants, channel="email", offset=offset)


_SURROGATE = re.compile("[\udc80-\udcff]")


def _raw_lines(f, limit: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line with its newline) for every line of a stream, read in chunks; a line longer than
    `limit` bytes comes in pieces of at most about `limit` (so memory stays bounded; its reader rejects it)."""
    pending, offset = b"", 0
    for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
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


def _decoded_lines(f, limit: int) -> Iterator[str]:
    """Lines of a byte stream as text (UTF-8, a leading BOM dropped); undecodable bytes become lone surrogates
    that the CSV reader rejects row by row instead of failing the file."""
    for offset, line in _raw_lines(f, limit):
        text = line.decode("utf-8", "surrogateescape")
        yield text.removeprefix("\ufeff") if offset == 0 else text


def read_archive(cfg: ScoreConfig):
    """The archive `cfg.paths` names as a streaming Ray Dataset of `ARCHIVE_SCHEMA` rows (rejects included)."""
    import ray.data

    return ray.data.read_datasource(ArchiveSource(cfg.paths, cfg.format, cfg.fields, cfg.max_bytes,
                                                  cfg.max_email_bytes))
