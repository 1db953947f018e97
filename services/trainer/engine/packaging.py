"""Content-addressing of directories: a deterministic tar for artefacts, a digest manifest for checkpoints."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from services.trainer.domain.progress import checkpoint_manifest
from shared.events.payloads import ArtifactRef
from shared.storage.artifacts import ArtifactStore, sha256_file


def file_digests(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def deterministic_tar(directory: Path) -> bytes:
    """Same files and bytes -> same tar bytes: sorted entries, zero mtimes/owners, fixed modes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            info = tarfile.TarInfo(name=path.relative_to(directory).as_posix())
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def store_directory(store: ArtifactStore, directory: Path) -> ArtifactRef:
    return store.put_bytes(deterministic_tar(directory))


def store_checkpoint_manifest(store: ArtifactStore, job_id: str, step: int, directory: Path) -> ArtifactRef:
    """The checkpoint itself stays on the training volume (it can be large and is pruned); the stored
    manifest pins each of its files by digest, and its own digest is the checkpoint's identity."""
    return store.put_bytes(checkpoint_manifest(job_id, step, file_digests(directory)))

