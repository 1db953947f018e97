"""LiteLLM's proxy (PyPI `litellm[proxy]`) as a comparison point for the gateway overhead bench.

LiteLLM lives in its own virtualenv (default ~/.cache/tunegate-bench/litellm-venv, or $TUNEGATE_BENCH_CACHE),
created and filled from PyPI on first use, so its many pinned dependencies never meet tunegate's. The proxy
gets a generated config that routes one model name to an OpenAI-compatible upstream (`openai/<model>` with
`api_base`), runs as `litellm --config ... --port P` on loopback, and is stopped (its whole process group)
when the context manager exits.

    with LiteLLMProxy.start(upstream_url="http://127.0.0.1:8001/v1", model="bench-model") as proxy:
        ... proxy.base_url, proxy.api_key ...

Settings for a fair comparison: no database, no spend logging, no callbacks; the proxy checks a master key
(as tunegate checks its API keys) and otherwise forwards. LITELLM_LOG=ERROR keeps per-request logging off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

LITELLM_REQUIREMENT = os.environ.get("TUNEGATE_BENCH_LITELLM", "litellm[proxy]")
MASTER_KEY = "sk-bench-master-key"
START_TIMEOUT_S = 180.0  # the first start imports a lot (and may compile bytecode) on 2 shared cores


class LiteLLMError(RuntimeError):
    """The LiteLLM virtualenv or proxy could not be set up; the message says which step and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("TUNEGATE_BENCH_CACHE", Path.home() / ".cache" / "tunegate-bench"))


def ensure_venv(venv: Path | None = None) -> Path:
    """The `litellm` executable in its own virtualenv, installing `litellm[proxy]` from PyPI if missing."""
    venv = venv or cache_dir() / "litellm-venv"
    executable = venv / "bin" / "litellm"
    if executable.exists():
        return executable
    # The interpreter tunegate runs on, not a virtualenv's symlink: a venv made from a venv nests oddly.
    base_python = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base_python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", LITELLM_REQUIREMENT],
    ]
    for step in steps:
        print(f"[litellm] {' '.join(step)}", file=sys.stderr)
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise LiteLLMError(f"`{' '.join(step)}` failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    if not executable.exists():
        raise LiteLLMError(f"{LITELLM_REQUIREMENT} installed, but {executable} is missing")
    return executable


def litellm_version(executable: Path) -> str:
    done = subprocess.run(
        [str(executable.parent / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True,
    )
    return done.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, *, model: str, upstream_url: str) -> None:
    """A proxy config routing `model` to the upstream. JSON is valid YAML, so no YAML writer is needed."""
    import json

    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"openai/{model}", "api_base": upstream_url, "api_key": "sk-upstream"},
            }
        ],
        "litellm_settings": {"drop_params": True, "telemetry": False, "num_retries": 0, "request_timeout": 60},
        "general_settings": {"master_key": MASTER_KEY, "disable_spend_logs": True},
    }
    path.write_text(json.dumps(config, indent=2))


@dataclass(frozen=True)
class LiteLLMProxy:
    base_url: str  # ends in /v1
    api_key: str
    version: str
    pid: int  # the proxy's process (its workers are its children)

    @staticmethod
    @contextmanager
    def start(
        *, upstream_url: str, model: str, workers: int = 1, venv: Path | None = None
    ) -> Iterator[LiteLLMProxy]:
        executable = ensure_venv(venv)
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="litellm-bench-") as workdir:
            config = Path(workdir) / "config.yaml"
            write_config(config, model=model, upstream_url=upstream_url)
            log = open(Path(workdir) / "litellm.log", "wb")  # noqa: SIM115 (closed below, after the process)
            env = {
                **os.environ,
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from GitHub at start
                "DISABLE_ADMIN_UI": "True",
                "NO_DOCS": "True",
            }
            env.pop("DATABASE_URL", None)
            command = [
                str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                "--num_workers", str(workers),
            ]
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, process, Path(workdir) / "litellm.log")
                yield LiteLLMProxy(base_url=f"{base}/v1", api_key=MASTER_KEY, version=litellm_version(executable),
                                   pid=process.pid)
            finally:
                _stop(process)
                log.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LiteLLMError(f"litellm exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(f"{base}/health/liveliness", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise LiteLLMError(f"litellm not ready on {base} after {START_TIMEOUT_S:.0f}s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the proxy's own process group (it may run workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
