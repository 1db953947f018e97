"""Content-addressed artefact store: bytes are stored once under their sha256 and referenced by URI.

Embedded default is a directory under $TUNEGATE_HOME/artifacts; writes are atomic (temp file + rename),
so a crash never leaves a partial artefact under a valid digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from shared.events.payloads import ArtifactRef

CAS_SCHEME = "cas://sha256/"
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put_bytes(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if not target.exists():
            self._atomic_write(target, lambda handle: handle.write(data))
        return ArtifactRef(uri=CAS_SCHEME + digest, sha256=digest, size_bytes=len(data))

    def put_file(self, source: Path) -> ArtifactRef:
        digest = sha256_file(source)
        target = self._path(digest)
        if not target.exists():
            with source.open("rb") as src:
                self._atomic_write(target, lambda handle: shutil.copyfileobj(src, handle, CHUNK))
        return ArtifactRef(uri=CAS_SCHEME + digest, sha256=digest, size_bytes=target.stat().st_size)

    def _atomic_write(self, target: Path, write) -> None:  # type: ignore[no-untyped-def]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def resolve(self, uri: str) -> Path:
        """Local path of a cas:// or file:// reference (or a plain path)."""
        if uri.startswith(CAS_SCHEME):
            path = self._path(uri[len(CAS_SCHEME) :])
        elif uri.startswith("file://"):
            path = Path(uri[len("file://") :])
        else:
            path = Path(uri)
        if not path.exists():
            raise FileNotFoundError(f"artefact {uri} not found at {path}")
        return path

    def verify(self, ref: ArtifactRef) -> Path:
        """Resolve and check the bytes still hash to the recorded digest."""
        path = self.resolve(ref.uri)
        actual = sha256_file(path)
        if actual != ref.sha256:
            raise ValueError(f"artefact {ref.uri}: sha256 is {actual}, expected {ref.sha256}")
        return path
