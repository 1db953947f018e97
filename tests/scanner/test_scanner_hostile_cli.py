"""`tunegate scan` and the scanner service against hostile arguments and files: worker counts, output paths,
unreadable datasets. Each is refused with a clear message (exit 2, or dataset.scan.failed), never a
traceback, a fork bomb or an overwritten source."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from services.scanner.adapters.detector import RegistryEntry
from services.scanner.domain.policy import Policy
from services.scanner.engine import records
from services.scanner.engine.records import WorkerConfig, process_records
from services.scanner.engine.workers import MAX_WORKERS, plan_workers
from services.scanner.entrypoints import cli
from shared.datasets import RawRecord
from tests.scanner.conftest import HASH_KEY
from tests.scanner.test_scanner_handlers import Harness


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "home"))

def scan(app: typer.Typer, *args: str) -> Any:
    result = CliRunner().invoke(app, ["scan", *args, "--no-ner"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


# --- worker processes -------------------------------------------------------------------------------------


def test_plan_workers_never_exceeds_cpus_work_or_the_maximum() -> None:
    assert plan_workers(100_000, cpus=4, chunks=1_000) == 4
    assert plan_workers(8, cpus=16, chunks=2) == 2
    assert plan_workers(3, cpus=16, chunks=100) == 3
    assert plan_workers(100_000, cpus=4096, chunks=100_000) == MAX_WORKERS
    assert plan_workers(0, cpus=4, chunks=0) == 1


def _no_pool(*args: object, **kwargs: object) -> None:
    raise AssertionError("a process pool was started")


class FakePool:
    """A ProcessPoolExecutor that forks nothing: it records the size it was asked for and runs chunks here."""

    sizes: ClassVar[list[int]] = []

    def __init__(self, max_workers: int, *, mp_context: object, initializer: Callable[..., None],
                 initargs: tuple[object, ...]) -> None:
        FakePool.sizes.append(max_workers)
        initializer(*initargs)

    def __enter__(self) -> FakePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: object) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def _run(
    records_count: int, workers: int, policy: Policy, registry: list[RegistryEntry]
) -> tuple[list[int], list[int]]:
    config = WorkerConfig(policy, "internal", "text", HASH_KEY, None, None, False)
    raws = iter([RawRecord(i, b'{"text": "hello"}\n') for i in range(1, records_count + 1)])
    started: list[int] = []
    lines = [r.line_no for r in process_records(raws, config, workers, 2, registry, on_start=started.append)]
    return lines, started


def test_a_huge_worker_request_is_capped_to_the_cpus(
    monkeypatch: pytest.MonkeyPatch, policy: Policy, registry: list[RegistryEntry]
) -> None:
    FakePool.sizes = []
    monkeypatch.setattr(records, "ProcessPoolExecutor", FakePool)
    monkeypatch.setattr(records, "available_cpus", lambda: 2)
    lines, started = _run(10, 100_000, policy, registry)  # 5 chunks of 2
    assert FakePool.sizes == [2] and started == [2] and lines == list(range(1, 11))
    monkeypatch.setattr(records, "available_cpus", lambda: 64)
    lines, started = _run(5, 100_000, policy, registry)  # 3 chunks: no more workers than that
    assert FakePool.sizes == [2, 3] and started == [3] and lines == list(range(1, 6))


def test_a_single_chunk_never_starts_a_pool(
    monkeypatch: pytest.MonkeyPatch, policy: Policy, registry: list[RegistryEntry]
) -> None:
    monkeypatch.setattr(records, "ProcessPoolExecutor", _no_pool)
    monkeypatch.setattr(records, "available_cpus", lambda: 64)
    assert _run(2, 100_000, policy, registry) == ([1, 2], [1])


def test_the_cli_refuses_an_absurd_worker_count(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "ProcessPoolExecutor", _no_pool)  # should the check regress: fail, never fork
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    result = scan(app, str(data), "--workers", "100000")
    assert result.exit_code == 2 and "Invalid value for '--workers'" in result.output
    assert f"less than or equal to {MAX_WORKERS}" in result.output
    assert "CLEAN" not in result.output


# --- output paths -----------------------------------------------------------------------------------------


def test_output_paths_are_checked_before_the_scan_and_never_overwrite_inputs(
    app: typer.Typer, tmp_path: Path
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    manifest = tmp_path / "d.jsonl.manifest.yaml"
    manifest.write_text("classification: public\n")
    before = data.read_bytes(), manifest.read_bytes()
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.jsonl").symlink_to(data)
    os.link(data, tmp_path / "hard.jsonl")
    cases = [
        (["--out", str(tmp_path / "no" / "such" / "o.jsonl")], "redacted dataset .*: the folder .*/no/such does not"),
        (["--out", str(tmp_path / "folder")], "redacted dataset .*folder is a directory"),
        (["--report", str(tmp_path / "no" / "r.json")], "report .*: the folder .*/no does not exist"),
        (["--out", str(data)], "is the same file as the dataset"),
        (["--out", str(tmp_path / "folder" / ".." / "d.jsonl")], "is the same file as the dataset"),
        (["--out", str(tmp_path / "link.jsonl")], "is the same file as the dataset"),
        (["--out", str(tmp_path / "hard.jsonl")], "is the same file as the dataset"),
        (["--report", str(manifest)], "is the same file as the manifest"),
        (["--report", str(tmp_path / "o.json"), "--out", str(tmp_path / "folder/../o.json")],
         "is the same file as the report"),
    ]
    for args, why in cases:
        result = scan(app, str(data), *args)
        assert result.exit_code == 2 and re.search(why, result.output), (args, result.output)
        assert "CLEAN" not in result.output, "refused before the scan"
    assert (data.read_bytes(), manifest.read_bytes()) == before
    assert not (tmp_path / "o.json").exists()
    ok = scan(app, str(data), "--out", str(tmp_path / "out.jsonl"), "--report", str(tmp_path / "r.json"))
    assert ok.exit_code == 0 and (tmp_path / "out.jsonl").read_bytes() == b'{"text":"hello"}\n'


def test_a_write_that_fails_after_the_scan_is_an_error_not_a_traceback(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.shutil, "copyfile", disk_full)
    result = scan(app, str(data), "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 2, result.output
    assert f"cannot write the report to {tmp_path / 'r.json'}: No space left on device" in result.output


# --- the dataset argument ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "why"),
    [
        ("", "the dataset path is empty or '.', a directory"),
        (".", "empty or '.'"),
        ("/", "/: the dataset is a directory"),
    ],
)
def test_a_directory_as_the_dataset_is_a_clear_error(app: typer.Typer, argument: str, why: str) -> None:
    result = scan(app, argument)
    assert result.exit_code == 2 and why in result.output and "give a JSONL, CSV or Parquet file" in result.output


def _hostile_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'text,id\n"abc\xff",1\n')
    bomb = tmp_path / "bomb.csv"
    bomb.write_text('text,id\n"' + "a" * 200_000 + "\n")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "hello"}] * 50), good)
    truncated = tmp_path / "trunc.parquet"
    truncated.write_bytes(good.read_bytes()[:200])
    return {
        "bad": (bad, "line 2: not UTF-8 (invalid start byte at byte 4 of the line)"),
        "bomb": (bomb, "line 2: malformed CSV (field larger than field limit"),
        "parquet": (truncated, "not a readable Parquet file"),
    }


def test_unreadable_datasets_exit_two_naming_the_line(app: typer.Typer, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.jsonl")
    cases = {name: case for name, case in _hostile_files(tmp_path).items()}
    cases["fifo"] = (tmp_path / "fifo.jsonl", "the dataset is a named pipe (FIFO), not a regular file")
    for name, (path, why) in cases.items():
        result = scan(app, str(path))
        assert result.exit_code == 2 and why in result.output, (name, result.output)


def test_the_service_fails_the_scan_of_an_unreadable_dataset(tmp_path: Path) -> None:
    """The stored copy it scans has no suffix: its first bytes make it CSV or Parquet, and reading it on fails."""
    harness = Harness(tmp_path / "home")
    for name, (path, why) in _hostile_files(tmp_path).items():
        [event] = harness.request({"uri": str(path)})
        assert event.type == "dataset.scan.failed", (name, event.payload)
        assert why in event.payload["reasons"][0], (name, event.payload)
