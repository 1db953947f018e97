"""How a service process names itself on the bus and announces that it lives: its consumer name, its
heartbeat key in Redis and its ready file. Kept free of heavy imports: the supervisor, `tunegate status`
and the container probe read these without loading the bus."""

from __future__ import annotations

HEARTBEAT_TTL_S = 10
HEARTBEAT_INTERVAL_S = 2.0


def consumer_name(service: str, host: str, pid: int) -> str:
    """One consumer per process: the host too, since pids repeat across containers."""
    return f"{service}-{host}-{pid}"


def heartbeat_key(service: str, consumer: str) -> str:
    return f"tunegate:heartbeat:{service}:{consumer}"


def ready_file_name(service: str, host: str, pid: int) -> str:
    """Host and pid: pids repeat across containers that share one TUNEGATE_HOME volume."""
    return f"{consumer_name(service, host, pid)}.ready"
