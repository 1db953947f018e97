"""How long a crashed replica's entries wait before a peer takes them: the ledger's own short default, unless
TUNEGATE_RECLAIM_IDLE_MS says otherwise; every other service keeps the general one (its handlers run long)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.audit.bootstrap import RECLAIM_IDLE_MS
from services.audit.bootstrap import build as build_audit
from services.scanner.bootstrap import build as build_scanner
from shared.bus.lifecycle import ServiceRuntime
from shared.config import Settings


def runtime_settings(home: Path, build, monkeypatch: pytest.MonkeyPatch, env: str | None) -> Settings:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TUNEGATE_RECLAIM_IDLE_MS", raising=False)
    if env is not None:
        monkeypatch.setenv("TUNEGATE_RECLAIM_IDLE_MS", env)
    settings = Settings(home=home, redis_url="redis://127.0.0.1:1")  # nothing connects in the constructor
    runtime = ServiceRuntime(build(settings), settings)
    runtime.db.dispose()
    return runtime.settings


def test_the_ledger_takes_over_a_dead_replicas_entries_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime_settings(tmp_path, build_audit, monkeypatch, None).reclaim_idle_ms == RECLAIM_IDLE_MS <= 5_000
    general = Settings.model_fields["reclaim_idle_ms"].default
    assert runtime_settings(tmp_path, build_scanner, monkeypatch, None).reclaim_idle_ms == general > RECLAIM_IDLE_MS


def test_the_environment_overrides_the_ledgers_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime_settings(tmp_path, build_audit, monkeypatch, "12000").reclaim_idle_ms == 12_000
    assert runtime_settings(tmp_path, build_scanner, monkeypatch, "700").reclaim_idle_ms == 700
