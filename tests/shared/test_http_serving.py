"""The services' HTTP server (shared/http_serving.py) on a real socket: each request's headers have a
deadline. uvicorn has none of its own, so a connection that sent nothing, or trickled header bytes, stayed
open for ever (enough of them hold every connection the server can have)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.http_serving import serve_app

DEADLINE_S = 0.5


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":  # an answer that takes longer than the headers' deadline: not cut
        await asyncio.sleep(3 * DEADLINE_S)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    url_file = tmp_path / "run" / "test.url"
    url_file.parent.mkdir()
    loop = asyncio.new_event_loop()
    task: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(serve_app(slow_app, host="127.0.0.1", port=0, url_file=url_file,
                                               log_level="warning", what="test", header_timeout_s=DEADLINE_S)))
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not url_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    host, port = url_file.read_text().strip().removeprefix("http://").split(":")
    yield host, int(port)
    loop.call_soon_threadsafe(task[0].cancel)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def closed_after(conn: socket.socket, trickle: bytes = b"") -> float:
    """Seconds until the server closes `conn`, sending `trickle` a byte every 0.1 s meanwhile."""
    started = time.monotonic()
    conn.settimeout(0.1)
    sent = 0
    while time.monotonic() - started < 10:
        if sent < len(trickle):
            try:
                conn.sendall(trickle[sent:sent + 1])
            except OSError:
                break
            sent += 1
        try:
            if conn.recv(4096) == b"":
                break
        except TimeoutError:
            continue
        except OSError:
            break
    return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        assert DEADLINE_S * 0.8 < closed_after(conn) < DEADLINE_S + 2


def test_headers_that_trickle_in_are_cut_off_at_the_deadline(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        assert closed_after(conn, b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 200) < DEADLINE_S + 2


def test_requests_on_a_kept_alive_connection_and_slow_answers_are_not_cut(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as conn:
        for path in ("/", "/slow", "/"):
            conn.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            answer = b""
            while not answer.endswith(b"ok"):
                answer += conn.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(DEADLINE_S / 3)  # idle between requests, within the deadline
