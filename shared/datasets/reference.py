"""Dataset references: the one place that parses, resolves, opens and verifies the datasets tunegate reads.

A dataset is named by a plain path, a `file://` URI (percent-encoded, as `Path.as_uri()` writes it) or
`cas://sha256/<64 hex>` (a copy in the artefact store). Every service reads through `DatasetRef.open`:

- `cas://` resolves only inside the artefact store, from a strict 64-hex digest;
- paths and `file://` resolve only under the configured data roots (TUNEGATE_DATA_ROOTS); with none
  configured nothing local is read;
- the final path component is opened with O_NOFOLLOW and the real path must stay under a root, so a
  symlink cannot lead out of the roots;
- the file is opened non-blocking and checked with fstat before a byte is read, so a FIFO or a device is
  refused at once instead of hanging the reader; only regular files up to TUNEGATE_MAX_DATASET_BYTES pass.

`dataset_mismatch` is the one answer to "are these the bytes that were scanned?", used by the submit
command, the registry, the scanner and the trainer."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from shared.config import Settings
from shared.datasets.manifest import MANIFEST_SUFFIXES
from shared.datasets.raw_files import file_type_name
from shared.storage.artifacts import CAS_SCHEME, ArtifactStore, is_sha256_digest, sha256_stream

DATA_ROOTS_SETTING = "TUNEGATE_DATA_ROOTS"
MAX_BYTES_SETTING = "TUNEGATE_MAX_DATASET_BYTES"


class DatasetRefError(ValueError):
    """A dataset reference that cannot be used; the message says which reference and why."""


class DatasetNotFound(DatasetRefError):
    pass


class DatasetMismatch(DatasetRefError):
    """The bytes read are not the bytes that were declared or scanned."""


@dataclass(frozen=True)
class DataAccess:
    """Where datasets may be read from, and how much of one."""

    store: ArtifactStore
    roots: tuple[Path, ...]
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, store: ArtifactStore | None = None) -> DataAccess:
        return cls(
            store=store or ArtifactStore(settings.path("artifacts", ".keep").parent),
            roots=tuple(settings.data_roots),
            max_bytes=settings.max_dataset_bytes,
        )


@dataclass(frozen=True)
class OpenedDataset:
    handle: LimitedReader
    path: Path
    size: int


@dataclass(frozen=True)
class DatasetRef:
    """A parsed reference: exactly one of `path` (local file, absolute) and `digest` (content address)."""

    uri: str
    path: Path | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, uri: str, *, base_dir: Path | None = None) -> DatasetRef:
        """Parse without touching the file system. A relative plain path is taken relative to `base_dir`
        (the job file's folder) and refused when there is none."""
        text = uri.strip()
        if not text:
            raise DatasetRefError("dataset reference is empty")
        if "\x00" in text:
            raise DatasetRefError(f"dataset reference {uri!r} contains a NUL byte")
        if text.startswith("cas://"):
            digest = text[len(CAS_SCHEME) :] if text.startswith(CAS_SCHEME) else ""
            if not is_sha256_digest(digest):
                raise DatasetRefError(
                    f"dataset reference {uri!r}: a content address is cas://sha256/ followed by 64 lowercase "
                    "hex digits, nothing else"
                )
            return cls(uri=text, digest=digest)
        scheme = urlsplit(text).scheme
        if scheme == "file":
            return cls(uri=text, path=_file_uri_path(text))
        # One-letter "schemes" are Windows drive letters; anything longer is a scheme we do not read.
        if scheme and len(scheme) > 1:
            raise DatasetRefError(
                f"dataset reference {uri!r}: scheme {scheme}:// is not supported (use a path, file:// or "
                "cas://sha256/<digest>)"
            )
        path = Path(text).expanduser()
        if not path.is_absolute():
            if base_dir is None:
                raise DatasetRefError(f"dataset path {uri!r} is relative; give an absolute path or a file:// URI")
            path = base_dir / path
        return cls(uri=text, path=Path(os.path.abspath(path)))

    @property
    def content_addressed(self) -> bool:
        return self.digest is not None

    def canonical_uri(self) -> str:
        """The form events carry: cas://sha256/<digest>, or an absolute, percent-encoded file:// URI."""
        if self.digest is not None:
            return CAS_SCHEME + self.digest
        assert self.path is not None
        return self.path.as_uri()

    def manifest_candidates(self) -> list[DatasetRef]:
        """`<dataset>.manifest.yaml` / `.yml` beside a local dataset; a content address has no "beside"."""
        if self.path is None:
            return []
        siblings = (self.path.with_name(self.path.name + suffix) for suffix in MANIFEST_SUFFIXES)
        return [DatasetRef(uri=str(sibling), path=sibling) for sibling in siblings]

    @contextmanager
    def open(
        self, access: DataAccess, *, max_bytes: int | None = None, what: str = "dataset"
    ) -> Iterator[OpenedDataset]:
        """Open for reading under the rules in the module docstring; raises DatasetRefError."""
        limit = access.max_bytes if max_bytes is None else max_bytes
        if self.digest is not None:
            path = access.store.path_of(self.digest)
            opened = _open_regular(path, limit, f"{what} {self.uri}", missing="is not in the artefact store")
        else:
            assert self.path is not None
            _check_under_roots(self.path, access.roots, f"{what} {self.uri}")
            opened = _open_regular(self.path, limit, f"{what} {self.uri}", missing=f"not found at {self.path}")
        try:
            yield opened
        finally:
            opened.handle.close()


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise DatasetRefError(f"dataset reference {uri!r}: file:// URIs on another host ({parts.netloc}) are not read")
    if parts.query or parts.fragment:
        raise DatasetRefError(f"dataset reference {uri!r}: a file:// URI has no query or fragment")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise DatasetRefError(f"dataset reference {uri!r}: its %-escapes are not UTF-8") from None
    if "\x00" in path:
        raise DatasetRefError(f"dataset reference {uri!r} contains a NUL byte")
    if not path.startswith("/"):
        raise DatasetRefError(f"dataset reference {uri!r}: a file:// URI needs an absolute path")
    return Path(os.path.abspath(path))


def _check_under_roots(path: Path, roots: Sequence[Path], label: str) -> None:
    if not roots:
        raise DatasetRefError(
            f"{label}: no data roots are configured, so no local dataset may be read; set {DATA_ROOTS_SETTING} "
            f"to the folders datasets live in (paths separated by '{os.pathsep}')"
        )
    real = Path(os.path.realpath(path))
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if real == real_root or real_root in real.parents:
            return
    shown = ", ".join(str(root) for root in roots)
    via = "" if real == path else f" (it resolves to {real})"
    raise DatasetRefError(f"{label}: {path}{via} is outside the data roots ({shown}; {DATA_ROOTS_SETTING})")


def _open_regular(path: Path, max_bytes: int, label: str, *, missing: str) -> OpenedDataset:
    """O_NOFOLLOW: the last component may not be a symlink; O_NONBLOCK: opening a FIFO returns at once."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DatasetNotFound(f"{label} {missing}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DatasetRefError(f"{label}: {path} is a symbolic link; links are not followed") from None
        raise DatasetRefError(f"{label}: cannot open {path} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DatasetRefError(f"{label}: {path} is {file_type_name(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise DatasetRefError(
                f"{label}: {path} is {info.st_size} bytes, over the limit of {max_bytes} bytes ({MAX_BYTES_SETTING})"
            )
        # A folder on the way may have been swapped for a link after the roots check: the file we hold must
        # be the one the checked real path names.
        real = os.stat(os.path.realpath(path))
        if (real.st_dev, real.st_ino) != (info.st_dev, info.st_ino):
            raise DatasetRefError(f"{label}: {path} changed while it was being opened")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return OpenedDataset(handle=LimitedReader(handle, max_bytes, label), path=path, size=info.st_size)


class LimitedReader:
    """Reads that fail past `max_bytes`: a file that grows after the size check is still capped."""

    def __init__(self, handle: BinaryIO, max_bytes: int, label: str) -> None:
        self._handle = handle
        self._left = max_bytes
        self._max_bytes = max_bytes
        self._label = label

    def read(self, size: int = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._handle.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise DatasetRefError(
                f"{self._label}: grew past the limit of {self._max_bytes} bytes ({MAX_BYTES_SETTING})"
            )
        return data

    def close(self) -> None:
        self._handle.close()


def dataset_mismatch(expected: str | None, actual: str, *, expected_from: str, actual_from: str) -> str | None:
    """None when the digests agree (or nothing was expected); otherwise the reason, naming both sides.

    This is the single definition of "same dataset": the sha256 of the exact bytes."""
    if expected is None or expected == actual:
        return None
    return f"dataset sha256 mismatch: {actual_from} has sha256 {actual}, {expected_from} says {expected}"


def hash_dataset(ref: DatasetRef, access: DataAccess) -> tuple[str, int]:
    """(sha256, size) of the dataset's bytes, read under the confinement rules."""
    with ref.open(access) as opened:
        return sha256_stream(opened.handle)


def verify_scanned(ref: DatasetRef, expected_sha256: str, access: DataAccess) -> Path:
    """The store path of a content-addressed dataset whose bytes still hash to what the scan recorded;
    raises DatasetMismatch otherwise (and DatasetRefError for anything that is not in the store)."""
    if not ref.content_addressed:
        raise DatasetRefError(f"dataset {ref.uri}: training reads only content-addressed (cas://) datasets")
    with ref.open(access) as opened:
        actual, _size = sha256_stream(opened.handle)
        path = opened.path
    reason = dataset_mismatch(expected_sha256, actual, expected_from="the scan", actual_from=f"the stored {ref.uri}")
    if reason:
        raise DatasetMismatch(reason)
    return path
