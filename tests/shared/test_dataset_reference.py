"""Dataset references: one file:// parser (percent-encoding undone), cas:// only inside the store, local files
only under the data roots, no symlinks, regular files only, a size limit, FIFOs refused at once."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from shared.config import Settings
from shared.datasets.reference import (
    DataAccess,
    DatasetMismatch,
    DatasetNotFound,
    DatasetRef,
    DatasetRefError,
    dataset_mismatch,
    hash_dataset,
    verify_scanned,
)
from shared.storage.artifacts import ArtifactStore

ODD_NAMES = ["with space/train data.jsonl", "données/élève ü 数据.jsonl", "percent%20literal/a%b.jsonl"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data root"
    folder.mkdir()
    return folder


@pytest.fixture
def access(tmp_path: Path, root: Path) -> DataAccess:
    return DataAccess(store=ArtifactStore(tmp_path / "store"), roots=(root,), max_bytes=1024)


def _write(path: Path, data: bytes = b'{"text": "hello"}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ODD_NAMES)
def test_file_uris_round_trip_through_percent_encoding(root: Path, access: DataAccess, name: str) -> None:
    dataset = _write(root / name)
    uri = dataset.as_uri()
    assert "%" in uri  # Path.as_uri percent-encodes spaces, non-ASCII and '%'
    ref = DatasetRef.parse(uri)
    assert ref.path == dataset and ref.canonical_uri() == uri
    assert DatasetRef.parse(str(dataset)).path == dataset  # the plain path names the same file
    assert hash_dataset(ref, access) == (hashlib.sha256(dataset.read_bytes()).hexdigest(), dataset.stat().st_size)


def test_relative_paths_need_a_base_and_other_schemes_are_refused(root: Path) -> None:
    assert DatasetRef.parse("sub/train.jsonl", base_dir=root).path == root / "sub" / "train.jsonl"
    with pytest.raises(DatasetRefError, match="is relative"):
        DatasetRef.parse("train.jsonl")
    with pytest.raises(DatasetRefError, match=r"scheme s3:// is not supported"):
        DatasetRef.parse("s3://bucket/key")
    with pytest.raises(DatasetRefError, match="on another host"):
        DatasetRef.parse("file://evil.example/etc/passwd")
    with pytest.raises(DatasetRefError, match="not UTF-8"):
        DatasetRef.parse("file:///data/%ff.jsonl")


@pytest.mark.parametrize(
    "uri",
    [
        "cas://sha256/../../etc/shadow",
        "cas://sha256/../fifo",
        "cas://sha256/" + "A" * 64,
        "cas://sha256/" + "0" * 63,
        "cas://sha256/" + "0" * 64 + "/x",
        "cas://md5/" + "0" * 32,
    ],
)
def test_content_addresses_are_strict(uri: str, access: DataAccess) -> None:
    with pytest.raises(DatasetRefError, match="64 lowercase hex"):
        DatasetRef.parse(uri)
    # The store refuses the same strings itself, whoever calls it.
    with pytest.raises(ValueError):
        access.store.resolve(uri)


def test_content_addressed_datasets_are_read_from_the_store_only(access: DataAccess, root: Path) -> None:
    stored = access.store.put_bytes(b'{"text": "stored"}\n')
    ref = DatasetRef.parse(stored.uri)
    assert hash_dataset(ref, access)[0] == stored.sha256
    assert verify_scanned(ref, stored.sha256, access) == access.store.path_of(stored.sha256)
    with pytest.raises(DatasetMismatch, match=f"the scan says {'0' * 64}"):
        verify_scanned(ref, "0" * 64, access)
    with pytest.raises(DatasetNotFound, match="not in the artefact store"):
        hash_dataset(DatasetRef.parse("cas://sha256/" + "1" * 64), access)
    with pytest.raises(DatasetRefError, match="only content-addressed"):
        verify_scanned(DatasetRef.parse(str(_write(root / "a.jsonl"))), "0" * 64, access)
    with pytest.raises(ValueError, match="not a cas://"):
        access.store.resolve(f"file://{root / 'a.jsonl'}")


def test_files_outside_the_roots_are_refused(tmp_path: Path, access: DataAccess) -> None:
    outside = _write(tmp_path / "elsewhere.jsonl")
    with pytest.raises(DatasetRefError, match=r"outside the data roots .*TUNEGATE_DATA_ROOTS"):
        hash_dataset(DatasetRef.parse(str(outside)), access)
    with pytest.raises(DatasetRefError, match="outside the data roots"):
        hash_dataset(DatasetRef.parse("/etc/passwd"), access)
    sneaky = access.roots[0] / ".." / "elsewhere.jsonl"  # '..' is resolved before the roots are checked
    with pytest.raises(DatasetRefError, match="outside the data roots"):
        hash_dataset(DatasetRef.parse(str(sneaky)), access)


def test_no_roots_configured_means_no_local_reads(root: Path, access: DataAccess) -> None:
    dataset = _write(root / "train.jsonl")
    closed = DataAccess(store=access.store, roots=(), max_bytes=access.max_bytes)
    with pytest.raises(DatasetRefError, match=r"no data roots are configured.*set TUNEGATE_DATA_ROOTS"):
        hash_dataset(DatasetRef.parse(str(dataset)), closed)


def test_symlinks_are_not_followed(tmp_path: Path, root: Path, access: DataAccess) -> None:
    link = root / "passwd.jsonl"
    link.symlink_to("/etc/passwd")
    with pytest.raises(DatasetRefError, match="outside the data roots"):
        hash_dataset(DatasetRef.parse(str(link)), access)
    inside = _write(root / "real.jsonl")
    (root / "alias.jsonl").symlink_to(inside)
    with pytest.raises(DatasetRefError, match="is a symbolic link"):
        hash_dataset(DatasetRef.parse(str(root / "alias.jsonl")), access)
    (root / "escape").symlink_to(tmp_path, target_is_directory=True)
    _write(tmp_path / "secret.jsonl")
    with pytest.raises(DatasetRefError, match=r"resolves to .*secret\.jsonl\) is outside the data roots"):
        hash_dataset(DatasetRef.parse(str(root / "escape" / "secret.jsonl")), access)


def test_a_fifo_is_refused_at_once(root: Path, access: DataAccess) -> None:
    fifo = root / "fifo.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            hash_dataset(DatasetRef.parse(str(fifo)), access)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "opening a FIFO blocked"
    [error] = outcome
    assert isinstance(error, DatasetRefError) and "named pipe (FIFO), not a regular file" in str(error)


def test_directories_and_devices_are_not_datasets(root: Path, access: DataAccess) -> None:
    (root / "folder").mkdir()
    with pytest.raises(DatasetRefError, match="is a directory, not a regular file"):
        hash_dataset(DatasetRef.parse(str(root / "folder")), access)
    with_dev = DataAccess(store=access.store, roots=(Path("/dev"),), max_bytes=10)
    with pytest.raises(DatasetRefError, match="is a device, not a regular file"):
        hash_dataset(DatasetRef.parse("/dev/zero"), with_dev)


def test_the_size_limit_is_enforced_before_reading(root: Path, access: DataAccess) -> None:
    big = _write(root / "big.jsonl", b"x" * (access.max_bytes + 1))
    limit = r"1025 bytes, over the limit of 1024 bytes \(TUNEGATE_MAX_DATASET_BYTES\)"
    with pytest.raises(DatasetRefError, match=limit):
        hash_dataset(DatasetRef.parse(str(big)), access)
    exact = _write(root / "exact.jsonl", b"x" * access.max_bytes)
    assert hash_dataset(DatasetRef.parse(str(exact)), access)[1] == access.max_bytes


def test_one_definition_of_same_dataset() -> None:
    digest = "a" * 64
    assert dataset_mismatch(None, digest, expected_from="x", actual_from="y") is None
    assert dataset_mismatch(digest, digest, expected_from="x", actual_from="y") is None
    reason = dataset_mismatch("b" * 64, digest, expected_from="the request", actual_from="the bytes read")
    assert reason == f"dataset sha256 mismatch: the bytes read has sha256 {digest}, the request says {'b' * 64}"


def test_settings_declare_roots_and_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNEGATE_DATA_ROOTS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b c'}")
    monkeypatch.setenv("TUNEGATE_MAX_DATASET_BYTES", "2048")
    access = DataAccess.from_settings(Settings(home=tmp_path / "home"))
    assert access.roots == (tmp_path / "a", tmp_path / "b c") and access.max_bytes == 2048
    monkeypatch.setenv("TUNEGATE_DATA_ROOTS", f'["{tmp_path / "j"}"]')
    assert Settings(home=tmp_path / "home").data_roots == [tmp_path / "j"]
    monkeypatch.setenv("TUNEGATE_DATA_ROOTS", "relative/dir")
    with pytest.raises(ValueError, match="data roots must be absolute"):
        Settings(home=tmp_path / "home")
