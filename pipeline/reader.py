"""A Ray Data source of JSON Lines that accounts for every line and every byte.

Ray's own ``read_json`` fails a whole read on one bad line and ``read_text`` loads each file whole.
This source streams each file (plain, gzip, or anything Arrow decompresses; local or cloud) in
chunks and yields one row per line: (path, line number, raw bytes). Lines over the size limit are
not carried (only their length), a truncated compressed stream ends with a reject row, an empty
file or one that cannot be opened yields one row saying so, so nothing is dropped and memory stays
bounded by the chunk size. Ray's listing skips symlinks that point nowhere; `broken_links` finds
them so the job can count them.
"""

from __future__ import annotations

import glob
import os
import zlib
from typing import Iterator

import pyarrow as pa
from ray.data.datasource import FileBasedDatasource

CHUNK_BYTES = 4 << 20
ROWS_PER_BLOCK = 2048
SCHEMA = pa.schema([
    ("path", pa.string()), ("line", pa.int64()), ("raw", pa.binary()),
    ("oversize", pa.int64()), ("error", pa.string()), ("detail", pa.string()),
])


class JsonLinesSource(FileBasedDatasource):
    """Rows ``path, line, raw, oversize, error, detail`` for every line of every file.

    `error` is '' for a line, or a file-level reason (empty_file, truncated_gzip, unreadable_file,
    dangling_symlink).
    """

    _FILE_EXTENSIONS = ["jsonl", "json", "ndjson", "gz", "bz2", "zst", "lz4", "txt"]

    def __init__(self, paths, max_line_bytes: int, **kwargs):
        super().__init__(paths, **kwargs)
        self.max_line_bytes = max_line_bytes

    def resolve_compression(self, path: str, open_args: dict) -> str | None:
        # gzip is decoded here, not by Arrow: Arrow fails a truncated stream whole, losing the good lines.
        return None if path.endswith(".gz") else super().resolve_compression(path, open_args)

    def _open_input_source(self, filesystem, path: str, **open_args):
        # A file listed but not openable (no permission, deleted since the listing) is one reject, not a failed job.
        try:
            return super()._open_input_source(filesystem, path, **open_args)
        except (OSError, pa.ArrowException) as e:
            return _Unopened(e)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        if isinstance(f, _Unopened):
            yield self._table([(path, 0, b"", 0, "unreadable_file", f"{type(f.error).__name__}: {f.error}"[:500])])
            return
        chunks = _gunzip(f) if path.endswith(".gz") else iter(lambda: f.read(CHUNK_BYTES), b"")
        yield from line_tables(chunks, path, self.max_line_bytes)

    @staticmethod
    def _table(rows: list[tuple]) -> pa.Table:
        cols = list(zip(*rows))
        return pa.Table.from_arrays([pa.array(c, type=t.type) for c, t in zip(cols, SCHEMA)], schema=SCHEMA)


def line_tables(chunks: Iterator[bytes], path: str, max_line_bytes: int, first_line: int = 0,
                whole_file: bool = True) -> Iterator[pa.Table]:
    """Tables in `SCHEMA` of the lines in a stream of byte `chunks` of `path`, numbered from `first_line` + 1.

    Lines over `max_line_bytes` carry only their length (`oversize`); a stream that ends early or cannot be
    decoded ends with a truncated_gzip / unreadable_file row after the lines read; `whole_file` streams
    without a line yield one empty_file row (a byte range of a file, `whole_file=False`, yields none).
    Memory is bounded by the chunk size and ROWS_PER_BLOCK.
    """
    rows: list[tuple] = []
    line_no = first_line
    pending = b""  # bytes of the current, unfinished line (bounded by max_line_bytes)
    pending_len = 0  # its true length, which may exceed what is kept
    try:
        for chunk in chunks:
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                piece = chunk[start:] if nl < 0 else chunk[start:nl]
                pending_len += len(piece)
                if pending_len <= max_line_bytes:
                    pending += piece
                else:
                    pending = b""
                if nl < 0:
                    break
                line_no += 1
                rows.append(_line_row(path, line_no, pending, pending_len, max_line_bytes))
                pending, pending_len, start = b"", 0, nl + 1
                if len(rows) >= ROWS_PER_BLOCK:
                    yield JsonLinesSource._table(rows)
                    rows = []
    except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
        # A stream that ends early or cannot be decoded: keep what was read, name the loss.
        reason = "truncated_gzip" if isinstance(e, EOFError) else "unreadable_file"
        rows.append((path, line_no + 1, b"", 0, reason, f"{type(e).__name__}: {e}"[:500]))
        yield JsonLinesSource._table(rows)
        return
    if pending_len:  # last line without a trailing newline
        line_no += 1
        rows.append(_line_row(path, line_no, pending, pending_len, max_line_bytes))
    if line_no == first_line and whole_file:
        rows.append((path, 0, b"", 0, "empty_file", "0 bytes of data"))
    if rows:
        yield JsonLinesSource._table(rows)


def _line_row(path: str, line_no: int, raw: bytes, length: int, max_line_bytes: int) -> tuple:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if length > max_line_bytes:
        return (path, line_no, b"", length, "", "")
    return (path, line_no, raw, 0, "", "")


class _Unopened:
    """Stands in for a file that could not be opened (Ray enters the opened file as a context manager)."""

    def __init__(self, error: Exception):
        self.error = error

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


def broken_links(paths: list[str]) -> list[tuple[str, str]]:
    """Symlinks inside the local input folders of `paths` that point nowhere (missing target or a loop).

    Ray's listing skips them without a word; the job turns each into a ``dangling_symlink`` reject.
    Names starting with '_' or '.' are skipped, as Ray's listing does. Returns (path, detail) pairs.
    """
    found = []
    for pattern in paths:
        if "://" in pattern:
            continue
        for root in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            if not os.path.isdir(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
                for name in sorted(filenames):
                    p = os.path.join(dirpath, name)
                    if name.startswith(("_", ".")) or not os.path.islink(p):
                        continue
                    try:
                        os.stat(p)
                    except OSError as e:
                        found.append((p, f"symlink to {os.readlink(p)!r}: {e.strerror}"))
    return found


def file_event_table(events: list[tuple[str, str]], reason: str) -> pa.Table:
    """Rows in the source's schema for file-level events found outside a read: (path, detail) -> `reason`."""
    return JsonLinesSource._table([(path, 0, b"", 0, reason, detail[:500]) for path, detail in events])


def _gunzip(f: pa.NativeFile) -> Iterator[bytes]:
    """Decompressed chunks of a (possibly multi-member) gzip stream.

    Raises EOFError when the stream stops inside a member (a truncated file) and zlib.error when
    the bytes are not gzip.
    """
    inflater = zlib.decompressobj(wbits=31)
    fed = False  # the current member has received bytes
    while raw := f.read(1 << 20):
        while raw:
            fed = True
            yield inflater.decompress(raw)
            if inflater.eof:  # a concatenated gzip: the rest belongs to the next member
                raw, inflater, fed = inflater.unused_data, zlib.decompressobj(wbits=31), False
            else:
                raw = b""
    if fed and not inflater.eof:
        raise EOFError("the compressed stream ends before the gzip end-of-stream marker")


def check_inputs(paths: list[str]) -> None:
    """Fail fast, naming every local input that matches nothing (cloud URIs are checked by Ray's listing)."""
    missing = [p for p in paths if "://" not in p and not (glob.glob(p) if glob.has_magic(p) else os.path.exists(p))]
    if missing:
        raise FileNotFoundError(f"data.paths: nothing found at {', '.join(missing)} "
                                "(files, folders, globs, .gz and cloud URIs are accepted)")
