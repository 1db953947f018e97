"""Reading dataset files record by record, before any record is parsed or validated (shared/datasets/formats.py
does that): the container from the file name, the file opened without blocking on a FIFO or device, JSONL lines
and CSV rows read with a byte limit (an over-long line is skipped unread), Parquet in batches, and every way a
file can be unreadable (not UTF-8, UTF-16, a quote left open, a broken Parquet footer) a DatasetError naming
the line or row. Nothing holds more than one record (or one Parquet batch) in memory."""

from __future__ import annotations

import codecs
import csv
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from shared.json_input import parse_json

Container = Literal["jsonl", "csv", "parquet"]
CONTAINERS: tuple[str, ...] = ("jsonl", "csv", "parquet")
# Bytes of one JSONL line or CSV row, read before any per-record check can run: without a cap a single 200 MB
# line is read and parsed whole (over 1 GB of peak memory). 32,000 characters of text are at most ~384 KB of
# JSON even fully \u-escaped, so 8 MiB leaves ample room for roles and metadata. Scans whose policy allows
# longer records raise it (`max_line_bytes_for`).
DEFAULT_MAX_LINE_BYTES = 8 << 20
# Skipping the rest of an over-long line reads it in pieces of this size, never whole.
_SKIP_CHUNK_BYTES = 1 << 16
# Byte-order marks of encodings that are not UTF-8: named in the error, because "invalid start byte" alone
# does not tell the data owner that the file just needs saving as UTF-8.
FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
# CSV cells holding structured values (message lists) arrive as JSON text.
_JSON_CELL_COLUMNS = frozenset(
    {
        "messages",
        "prompt",
        "completion",
        "chosen",
        "rejected",
        "input",
        "preferred_output",
        "non_preferred_output",
        "metadata",
    }
)


class DatasetError(ValueError):
    """A dataset that cannot be read as a whole (missing, unknown container, undetectable kind)."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record before parsing: the raw JSONL line, or the row dict of a CSV/Parquet file. `problem`: why
    the record could not even be read (an over-long line is skipped unread, so `raw` is then empty)."""

    line_no: int
    raw: bytes | dict[str, Any]
    problem: str | None = None


def max_line_bytes_for(max_chars: int) -> int:
    """The line limit that never refuses a record the character limit would accept: at most 12 bytes of JSON
    per character (a surrogate pair of \\u escapes), plus room for everything that is not text."""
    return max(DEFAULT_MAX_LINE_BYTES, 12 * max_chars + (1 << 20))


def file_type_name(mode: int) -> str:
    """What a non-regular file is, in words ("a named pipe (FIFO)"), from its st_mode."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@contextmanager
def open_dataset_file(path: Path) -> Iterator[BinaryIO]:
    """Open a local dataset for reading. Non-blocking and checked with fstat before a byte is read: a FIFO
    would hang the reader and a device (/dev/zero behind a symlink) would never end, so both are refused at
    once, with what they are, instead of a misleading "not found"."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DatasetError(f"{path}: dataset file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open the dataset ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DatasetError(f"{path}: the dataset is {file_type_name(mode)}, not a regular file")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def detect_container(path: Path) -> Container:
    """From the file name; content-addressed files have no suffix, so their first bytes decide."""
    name = path.name.lower()
    for suffix, container in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if name.endswith(suffix):
            return container  # type: ignore[return-value]
    if "." not in name:
        with open_dataset_file(path) as handle:
            head = handle.read(4096)
        if head.startswith(b"PAR1"):
            return "parquet"
        first = head.lstrip()[:1]
        if first == b"{":
            return "jsonl"
        if first and b"," in head.split(b"\n", 1)[0]:
            return "csv"
    raise DatasetError(f"{path}: unknown dataset container (expected .jsonl, .csv or .parquet)")


def iter_raw(
    path: Path, container: Container | None = None, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[RawRecord]:
    """Stream raw records; blank JSONL lines are skipped but keep the numbering of the file. A file that
    cannot be read on (bad bytes in a CSV, a broken Parquet file) raises DatasetError naming the line or row
    and why; an over-long JSONL line is a record with a `problem`, skipped unread, and the stream goes on."""
    container = container or detect_container(path)
    with open_dataset_file(path) as handle:
        if container == "jsonl":
            yield from _jsonl_records(handle, max_line_bytes)
        elif container == "csv":
            yield from _csv_records(handle, path, max_line_bytes)
        else:
            yield from _parquet_records(handle, path)


def _over_long(line_bytes: int, limit: int) -> str:
    return f"over-long record: the line is {line_bytes} bytes, over the limit of {limit} bytes"


def _skip_line(handle: BinaryIO) -> int:
    """Read past the end of the current line in small pieces; returns the bytes skipped before its line break."""
    skipped = 0
    while piece := handle.readline(_SKIP_CHUNK_BYTES):
        if piece.endswith(b"\n"):
            return skipped + len(piece) - 1
        skipped += len(piece)
    return skipped


def _jsonl_records(handle: BinaryIO, limit: int) -> Iterator[RawRecord]:
    line_no = 0
    while line := handle.readline(limit + 1):  # one byte more than allowed tells an over-long line apart
        line_no += 1
        if len(line) - line.endswith(b"\n") > limit:
            # The line is not kept: the rest is only counted, so memory stays within the limit.
            yield RawRecord(line_no, b"", _over_long(len(line) + _skip_line(handle), limit))
        elif line.strip():
            yield RawRecord(line_no, line)


class _CsvLines:
    """The physical lines of a CSV file, decoded one at a time: a bad byte names its line (a text-mode file
    decodes 8 KB blocks and cannot), a UTF-8 byte-order mark is dropped, and no line nor any row (an
    unterminated quote swallows every line after it) may grow past `limit` bytes. Lines split at \\n, \\r
    and \\r\\n, as the csv module's own newline='' reading does, so `csv.reader.line_num` counts them."""

    def __init__(self, handle: BinaryIO, path: Path, limit: int) -> None:
        self._handle = handle
        self._path = path
        self._limit = limit
        self.line_no = 0
        self.row_start = 1
        self._row_bytes = 0

    def next_row(self) -> None:
        """Called before the reader reads each row: the limit is per row, the error names where it began."""
        self.row_start = self.line_no + 1
        self._row_bytes = 0

    def __iter__(self) -> Iterator[str]:
        while line := self._handle.readline(self._limit + 1):
            self._row_bytes += len(line)
            if self._row_bytes > self._limit:
                raise DatasetError(
                    f"{self._path}: line {self.row_start}: a CSV row over the limit of {self._limit} bytes "
                    "(is a quote left unterminated?)"
                )
            for piece in line.splitlines(keepends=True):
                self.line_no += 1
                yield self._decode(piece)

    def _decode(self, piece: bytes) -> str:
        if self.line_no == 1:
            for bom, encoding in FOREIGN_BOMS:
                if piece.startswith(bom):
                    raise DatasetError(
                        f"{self._path}: line 1: the file is {encoding} text (it starts with a {encoding} byte-order "
                        "mark); save it as UTF-8"
                    )
            piece = piece.removeprefix(codecs.BOM_UTF8)
        try:
            return piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{self._path}: line {self.line_no}: not UTF-8 ({exc.reason} at byte {exc.start} of the line)"
            ) from None


def _csv_records(handle: BinaryIO, path: Path, limit: int) -> Iterator[RawRecord]:
    lines = _CsvLines(handle, path, limit)
    reader = csv.reader(lines)
    lines.next_row()
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1: malformed CSV header ({exc})") from None
    if header is None:
        return
    seen: set[str] = set()
    for column in header:
        if column in seen:
            # DictReader would keep only the last of the two cells: the other would vanish from the data.
            raise DatasetError(f"{path}: line 1: column {column!r} appears more than once in the CSV header")
        seen.add(column)
    while True:
        lines.next_row()
        try:
            row = next(reader, None)
        except csv.Error as exc:
            reason = str(exc)
            if "field larger than field limit" in reason:
                reason += "; is a quote left unterminated?"
            raise DatasetError(f"{path}: line {lines.row_start}: malformed CSV ({reason})") from None
        if row is None:
            return
        if not row:
            continue  # a blank line, as csv.DictReader skips it
        # line_num is the physical line where this row ended; rows may span lines (quoted newlines).
        record = {column: _csv_cell(column, value) for column, value in zip(header, row, strict=False)}
        for column in header[len(row):]:
            record[column] = None
        if len(row) > len(header):
            # Cells beyond the header have no column name: dropping them would silently cut the record.
            problem = f"the row has {len(row)} cells but the CSV header names {len(header)} columns"
            yield RawRecord(reader.line_num, record, problem)
        else:
            yield RawRecord(reader.line_num, record)


def _parquet_records(handle: BinaryIO, path: Path) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # ArrowInvalid is a ValueError, ArrowIOError an OSError; the rest share ArrowException.
    unreadable = (pa.ArrowException, OSError, ValueError, OverflowError)
    try:
        batches = pq.ParquetFile(handle).iter_batches(batch_size=1024)
    except unreadable as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
    row_no = 0
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except unreadable as exc:
            raise DatasetError(f"{path}: row {row_no + 1}: unreadable Parquet data ({exc})") from None
        if batch is None:
            return
        for row in rows:
            row_no += 1
            yield RawRecord(row_no, row)


def _csv_cell(column: str, value: str | None) -> Any:
    if value is None:
        return None
    stripped = value.strip()
    if column in _JSON_CELL_COLUMNS and stripped[:1] in ("[", "{"):
        try:
            return parse_json(stripped)
        except ValueError:
            return value
    return value
