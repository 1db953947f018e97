"""Owner-only files and folders for everything under $TUNEGATE_HOME: databases, logs, pid and ready files,
Redis data, keys. The home is 0700 and every file in it 0600, whatever the umask of whoever started us."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_umask() -> int:
    """Make every file this process (and its children) creates owner-only; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path, *, within: Path | None = None) -> Path:
    """Create `path` and its missing parents as 0700 (only those at or below `within`, when given; folders
    above it are left as they are) and tighten `path` itself to 0700 if it already existed."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        private = within is None or folder == within or within in folder.parents
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE if private else 0o777)
        except FileExistsError:
            continue  # another process created it between our check and our mkdir
        if private:
            os.chmod(folder, PRIVATE_DIR_MODE)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as 0600 when missing, or tighten it to 0600 when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE_MODE)
    else:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        os.close(fd)
    return path


def open_private_append(path: Path) -> BinaryIO:
    """A log file opened for appending, created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab")


def _tighten(path: Path, mode: int) -> None:
    """chmod when we own the path; a folder owned by someone else (e.g. /tmp above a home) is left alone."""
    info = path.stat()
    if info.st_uid == os.getuid() and (info.st_mode & 0o777) != mode:
        os.chmod(path, mode)
