"""Helpers for the audit tests (importable; fixtures live in conftest.py)."""

from __future__ import annotations

import uuid

import typer

from shared.events.envelope import Envelope


def envelope(index: int = 0, **overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "type": "job.state_changed",
        "producer": "registry",
        "actor": f"user-{index % 7}@example.com",
        "subject": f"job_{index:06d}",
        "trace": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        "payload": {"job_id": f"job_{index:06d}", "from_state": "requested", "to_state": "scanning"},
    }
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def audit_cli_app() -> typer.Typer:
    """A root app holding only the `audit` verbs, as `tunegate` mounts them."""
    from services.audit.entrypoints.cli import register

    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """tunegate"""

    register(root)
    return root
