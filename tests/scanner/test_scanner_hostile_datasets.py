"""Hostile dataset files: every way a file can be unreadable is a DatasetError (or a record-level issue) that
names the line or row and the reason, never a traceback, a hang or a misleading "not found"."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.scanner.engine.canaries import plant_canaries
from services.scanner.engine.pipeline import ScanOptions, scan_dataset
from shared.datasets import (
    DatasetError,
    detect_format,
    find_manifest,
    iter_raw,
    parse_raw,
    validate_dataset,
)
from shared.datasets.raw_files import DEFAULT_MAX_LINE_BYTES, max_line_bytes_for
from shared.evaluation.options import CanarySpec


def test_undecodable_csv_names_the_line_and_the_encoding(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'text,id\n"fine",1\n"abc\xff",2\n')
    with pytest.raises(DatasetError, match=r"bad\.csv: line 3: not UTF-8 \(invalid start byte at byte 4"):
        list(iter_raw(bad))
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("text\nhello\n".encode("utf-16"))
    with pytest.raises(DatasetError, match=r"line 1: the file is UTF-16 text .*save it as UTF-8"):
        detect_format(utf16)


def test_csv_quote_bomb_and_over_long_rows_are_refused_naming_where_they_start(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.csv"
    bomb.write_text('text\nfine\n"' + "a" * 200_000 + "\n")
    with pytest.raises(DatasetError, match=r"line 3: malformed CSV \(field larger than field limit .*unterminated"):
        list(iter_raw(bomb))
    # Many short quoted lines in one unterminated field stay under the field limit: the row limit stops them.
    spread = tmp_path / "spread.csv"
    spread.write_text('text,id\nok,1\n"' + "abcdefghij\n" * 50 + '",2\n')
    with pytest.raises(DatasetError, match="line 3: a CSV row over the limit of 200 bytes"):
        list(iter_raw(spread, max_line_bytes=200))
    assert [r.line_no for r in iter_raw(spread)] == [2, 53]  # within the default limit the row is fine


def test_csv_byte_order_mark_is_accepted_and_columns_are_never_dropped(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbftext\nhello\n")
    assert detect_format(bom) == "text"
    assert [r.raw for r in iter_raw(bom)] == [{"text": "hello"}]
    dup = tmp_path / "dup.csv"
    dup.write_text("text,text\na,b\n")
    with pytest.raises(DatasetError, match="line 1: column 'text' appears more than once"):
        list(iter_raw(dup))
    wide = tmp_path / "wide.csv"
    wide.write_text("text\nhello, world\nfine\n")  # an unquoted comma: ", world" has no column
    assert [(i.line_no, i.reason) for i in validate_dataset(wide)] == [
        (2, "the row has 2 cells but the CSV header names 1 columns")
    ]


def test_broken_parquet_is_a_dataset_error(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": f"row {i}"} for i in range(100)]), good)
    truncated = tmp_path / "trunc.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"trunc\.parquet: not a readable Parquet file \(.*magic bytes"):
        list(iter_raw(truncated))
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        detect_format(truncated)


def test_an_over_long_jsonl_line_is_an_issue_for_that_line_and_is_never_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "' + b"x" * 200_000 + b'"}\n{"text": "b"}\n' + b"y" * 300)

    class Spy:
        """Records the largest read: the over-long line must be skipped in pieces, never pulled in whole."""

        def __init__(self, handle: object) -> None:
            self.handle, self.largest = handle, 0

        def readline(self, size: int) -> bytes:
            assert size > 0, "an unbounded readline"
            data = self.handle.readline(size)  # type: ignore[attr-defined]
            self.largest = max(self.largest, len(data))
            return data

    from shared.datasets import raw_files

    with path.open("rb") as handle:
        spy = Spy(handle)
        raws = list(raw_files._jsonl_records(spy, 100))  # type: ignore[arg-type]
    assert spy.largest <= raw_files._SKIP_CHUNK_BYTES
    assert [(r.line_no, r.problem) for r in raws] == [
        (1, None),
        (2, "over-long record: the line is 200012 bytes, over the limit of 100 bytes"),
        (3, None),
        (4, "over-long record: the line is 300 bytes, over the limit of 100 bytes"),
    ]
    assert raws[1].raw == b"" and parse_raw(raws[1]) == (None, raws[1].problem)


def test_the_scan_reports_an_over_long_line_and_goes_on(tmp_path: Path, options: ScanOptions) -> None:
    path = tmp_path / "d.jsonl"
    limit = max_line_bytes_for(options.policy.max_record_chars)
    assert limit >= DEFAULT_MAX_LINE_BYTES
    with path.open("wb") as out:
        out.write(b'{"text": "a"}\n{"text": "')
        out.write(b"x" * (limit + 10))
        out.write(b'"}\n{"text": ""}\n')
    result = scan_dataset(path, None, options, tmp_path / "work")
    assert result.verdict == "invalid" and result.source_records == 3
    assert result.blocking_reasons == [
        f"line 2: over-long record: the line is {limit + 22} bytes, over the limit of {limit} bytes",
        "line 3: empty text",
    ]


def test_values_without_a_canonical_json_form_are_record_issues(tmp_path: Path, options: ScanOptions) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "score": NaN}\n{"text": "b"}\n')
    result = scan_dataset(path, None, options, tmp_path / "work")
    assert result.verdict == "invalid"
    assert result.blocking_reasons == [
        "line 1: a value cannot be written as canonical JSON (Out of range float values are not JSON compliant)"
    ]


def test_canaries_refuse_a_line_they_could_not_copy(tmp_path: Path) -> None:
    source = tmp_path / "d.jsonl"
    with source.open("wb") as out:
        out.write(b'{"text": "a"}\n{"text": "' + b"x" * DEFAULT_MAX_LINE_BYTES + b'"}\n')
    with pytest.raises(DatasetError, match="line 2: over-long record"):
        plant_canaries(source, tmp_path / "planted.jsonl", job_id="j", spec=CanarySpec(count=1), key=b"k" * 32)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"text": "\xff"}\n', r"line 1: not UTF-8 \(invalid start byte at byte 10\)"),
        ('{"text": "hi"}\n'.encode("utf-16"), "line 1: not UTF-8: the line starts with a UTF-16 byte-order mark"),
        (b'{"text": "a\x00b"}\n\x00\x00\n', "line 1: bad JSON: Invalid control character"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1: bad JSON: nested more than about"),
        (b'\n\n{"foo": 1}\n', r"line 3: its keys \['foo'\] match no known layout"),
        (b"\n", "the dataset has no records"),
    ],
)
def test_an_undetectable_format_names_the_first_lines_real_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=f"cannot detect the record format: {problem}"):
        detect_format(path)


def test_json_lines_are_utf8_only(tmp_path: Path) -> None:
    """json.loads guesses UTF-16 from NUL bytes: a line that is not UTF-8 must be refused, not reinterpreted."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n\xef\xbb\xbf{"text": "bom"}\n' + '{"text": "b"}\n'.encode("utf-16-be"))
    raws = list(iter_raw(path))
    assert parse_raw(raws[1]) == ({"text": "bom"}, None)
    record, problem = parse_raw(raws[2])
    assert record is None and problem is not None and problem.startswith("bad JSON")


def test_non_files_say_what_they_are(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.jsonl")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "noext").mkdir()
    cases = {
        "fifo.jsonl": r"is a named pipe \(FIFO\), not a regular file",
        "zero.jsonl": "is a device, not a regular file",
        "dir.jsonl": "is a directory, not a regular file",
        "noext": "is a directory, not a regular file",
        "missing.jsonl": "dataset file not found",
    }
    for name, why in cases.items():
        with pytest.raises(DatasetError, match=why):  # returns at once: a FIFO is never waited on
            detect_format(tmp_path / name)
        with pytest.raises(DatasetError, match=why):
            list(iter_raw(tmp_path / name))


@pytest.mark.parametrize("path", ["", ".", "/"])
def test_a_path_without_a_file_name_has_no_manifest(path: str) -> None:
    assert find_manifest(Path(path)) is None
