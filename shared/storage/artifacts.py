"""Content-addressed artefact store: bytes are stored once under their sha256 and referenced by URI.

Embedded default is a directory under $TUNEGATE_HOME/artifacts; writes are atomic (temp file + rename),
so a crash never leaves a partial artefact under a valid digest."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from shared.events.payloads import SHA256_PATTERN, ArtifactRef

CAS_SCHEME = "cas://sha256/"
CHUNK = 1 << 20
_DIGEST = re.compile(SHA256_PATTERN)


def is_sha256_digest(value: str) -> bool:
    """An artefact's id in the store: exactly 64 lowercase hex digits (so it can never be a path)."""
    return _DIGEST.fullmatch(value) is not None


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def sha256_stream(handle: Readable) -> tuple[str, int]:
    """(hex sha256, byte count) of everything left in `handle`."""
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """The one file-hash function: hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return sha256_stream(handle)[0]


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, digest: str) -> Path:
        """Where the bytes with this digest live; only a 64-hex digest names a place (never '..' or '/')."""
        if not is_sha256_digest(digest):
            raise ValueError(f"artefact digest {digest[:80]!r} is not 64 lowercase hex digits")
        return self.root / digest[:2] / digest

    def put_bytes(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self._shard(digest), prefix=".incoming-")
            self._commit(fd, Path(tmp), target, lambda handle: handle.write(data))
        return ArtifactRef(uri=CAS_SCHEME + digest, sha256=digest, size_bytes=len(data))

    def put_file(self, source: Path) -> ArtifactRef:
        with source.open("rb") as handle:
            return self.put_stream(handle)

    def put_stream(self, source: Readable) -> ArtifactRef:
        """Copy everything left in `source` into the store, hashing while copying (one read of the bytes)."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        digest = hashlib.sha256()
        size = 0

        def copy(handle: object) -> None:
            nonlocal size
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)  # type: ignore[attr-defined]

        staged = Path(tmp)
        self._commit(fd, staged, None, copy)
        hexdigest = digest.hexdigest()
        target = self.path_of(hexdigest)
        self._shard(hexdigest)
        if target.exists():
            staged.unlink(missing_ok=True)
        else:
            os.replace(staged, target)
        return ArtifactRef(uri=CAS_SCHEME + hexdigest, sha256=hexdigest, size_bytes=size)

    def _shard(self, digest: str) -> Path:
        folder = self.root / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _commit(self, fd: int, staged: Path, target: Path | None, write) -> None:  # type: ignore[no-untyped-def]
        """Write through `fd` and fsync; rename onto `target` when given. A failure leaves no staged file."""
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            if target is not None:
                os.replace(staged, target)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise

    def delete(self, digest: str) -> bool:
        """Remove the bytes with this digest (an erasure); False when they were not here."""
        path = self.path_of(digest)
        if not path.is_file() or path.is_symlink():
            return False
        path.unlink()
        return True

    def resolve(self, uri: str) -> Path:
        """Local path of a `cas://sha256/<digest>` reference: always inside the store."""
        if not uri.startswith(CAS_SCHEME):
            raise ValueError(f"artefact {uri[:200]!r} is not a cas://sha256/<digest> reference")
        path = self.path_of(uri[len(CAS_SCHEME) :])
        if not path.is_file() or path.is_symlink():
            raise FileNotFoundError(f"artefact {uri} not found in the store")
        return path

    def verify(self, ref: ArtifactRef) -> Path:
        """Resolve and check the bytes still hash to the recorded digest."""
        path = self.resolve(ref.uri)
        actual = sha256_file(path)
        if actual != ref.sha256:
            raise ValueError(f"artefact {ref.uri}: sha256 is {actual}, expected {ref.sha256}")
        return path
