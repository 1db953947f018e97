"""The faults the chaos driver injects, each a small thing it controls: a pausable TCP proxy in front of
PostgreSQL, a writer holding SQLite's write lock, a size-limited tmpfs under $TUNEGATE_HOME that can be filled
to ENOSPC, and the bad entries it puts on the bus on purpose."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.bus.groups import group_name
from shared.events.envelope import Envelope
from shared.roster import consumers_of
from shared.security.signing import EnvelopeSigner, KeyDirectory


class PausableProxy:
    """A TCP proxy (asyncio, in its own thread) between the services and PostgreSQL. `outage(seconds)` cuts
    every open connection and refuses new ones for that long: to the services the database is unreachable,
    exactly as when its host drops off the network, and the real server is left alone."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._down = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the PostgreSQL proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down.is_set():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def _cut(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()  # RST, as a vanished host looks to the client after its timeout
        self._writers.clear()

    def outage(self, seconds: float) -> None:
        self._down.set()
        self._loop.call_soon_threadsafe(self._cut)
        time.sleep(seconds)
        self._down.clear()

    def url(self, base: str) -> str:
        """`base` (a postgresql:// URL to 127.0.0.1:5432) pointed at the proxy instead."""
        host = f"{self.target[0]}:{self.target[1]}"
        if host not in base:
            raise ValueError(f"TUNEGATE_TEST_DATABASE_URL must name {host} for the proxy to stand in front of it")
        return base.replace(host, f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def hold_sqlite_write_lock(db_file: Path, seconds: float) -> None:
    """SQLite has no server to cut off: the nearest thing to "unreachable" is another writer holding the
    database's write lock, so every write of the service waits (busy timeout) or fails with `database is
    locked` for that long."""
    conn = sqlite3.connect(db_file, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


class SmallDisk:
    """A size-limited tmpfs mounted at the chaos run's home (needs root), so the run can fill its disk."""

    def __init__(self, mountpoint: Path, size_mb: int) -> None:
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.mounted = False

    @staticmethod
    def possible() -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, "not root: no tmpfs or loop device can be mounted"
        return True, ""

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs", str(self.mountpoint)],
            check=True, capture_output=True,
        )
        self.mounted = True

    def fill(self, seconds: float) -> int:
        """Write a filler file until ENOSPC, hold the disk full for `seconds`, delete it; the bytes written."""
        filler = self.mountpoint / "chaos-filler.bin"
        written = 0
        chunk = b"\0" * (1 << 20)
        try:
            # Unbuffered: a buffer left over at close would raise ENOSPC again after the disk is declared full.
            with filler.open("wb", buffering=0) as out:
                for size in (len(chunk), 4096, 1):  # then the last pages, then the last bytes
                    while True:
                        try:
                            written += out.write(chunk[:size]) or 0
                        except OSError as exc:
                            if exc.errno != errno.ENOSPC:
                                raise
                            break
                        if written > self.size_mb << 21:  # twice the size: this is not the tmpfs
                            raise RuntimeError(f"{self.mountpoint} did not fill up: is it the tmpfs?")
            time.sleep(seconds)
        finally:
            filler.unlink(missing_ok=True)
        return written

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)
            self.mounted = False


@dataclass
class BadEntries:
    """Entries put on a stream on purpose that no service may accept, each in the ledger only as
    `bus.event.rejected`. Which groups dead-letter one depends on what it claims to be: an entry that is no
    envelope at all, every group reading the stream; a forged or unauthorised event, the audit and every
    service that consumes its type (a service acks another service's event type unread, shared/bus/dispatch.py:
    the audit checks it)."""

    stream: str = "tunegate.jobs"
    entry_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    claimed_types: dict[str, str | None] = field(default_factory=dict)
    """entry id -> the event type the entry claims (None: not an envelope)."""

    def inject(self, client: redis.Redis, keys_dir: Path, tag: str) -> None:
        def state_changed(producer: str) -> Envelope:
            job_id = f"job_chaos_{hashlib.sha256(f'{tag}{producer}{len(self.entry_ids)}'.encode()).hexdigest()[:12]}"
            return Envelope(
                type="job.state_changed", producer=producer, actor="chaos", subject=job_id,
                payload={"job_id": job_id, "from_state": None, "to_state": "requested", "reason": ""},
            )

        forged = EnvelopeSigner("registry", Ed25519PrivateKey.generate()).sign(state_changed("registry"))
        unauthorised = KeyDirectory(keys_dir).existing_signer("scanner").sign(state_changed("scanner"))
        for body, event_id in ((b"{not an envelope", None), (forged.to_wire(), forged.event_id),
                               (unauthorised.to_wire(), unauthorised.event_id)):
            entry = client.xadd(self.stream, {"envelope": body})
            entry_id = entry.decode() if isinstance(entry, bytes) else entry
            self.entry_ids.append(entry_id)
            self.claimed_types[entry_id] = "job.state_changed" if event_id else None
            if event_id:
                self.event_ids.append(event_id)

    def refusing_groups(self, entry_id: str, groups: set[str]) -> set[str]:
        """The groups (of those reading the stream) that must dead-letter this entry."""
        claimed = self.claimed_types[entry_id]
        if claimed is None:
            return groups
        return {group_name(name) for name in consumers_of(claimed)} & groups
