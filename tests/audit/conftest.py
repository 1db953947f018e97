"""Fixtures for the audit ledger tests: a SQLite ledger under tmp_path, a signer, envelope factories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService, open_ledger
from shared.config import Settings
from shared.storage.db import Database
from tests.audit.audit_support import audit_cli_app, envelope
from tests.support import postgres_schema, postgres_test_url


@pytest.fixture
def app() -> typer.Typer:
    return audit_cli_app()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", sth_max_entries=1000, sth_max_interval_s=60.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    db = Database(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    ledger_store = LedgerStore(db)
    ledger_store.create_schema()
    yield ledger_store
    db.dispose()


@pytest.fixture
def signer(settings: Settings) -> Ed25519Signer:
    return Ed25519Signer.load_or_create(settings.home_dir / "keys")


@pytest.fixture
def ledger(store: LedgerStore, signer: Ed25519Signer, settings: Settings) -> LedgerService:
    return LedgerService(store, signer, settings)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema per test in the PostgreSQL named by TUNEGATE_TEST_DATABASE_URL, dropped afterwards."""
    base = postgres_test_url()
    if base is None:
        pytest.skip("TUNEGATE_TEST_DATABASE_URL is not set")
    with postgres_schema(base, "audit_test") as url:
        yield url


@pytest.fixture
def live(tunegate_home: Path) -> tuple[LedgerService, list[str]]:
    """A ledger of 40 entries with a signed tree head at 30, and the events' ids."""
    ledger = open_ledger(Settings())
    events = [envelope(i) for i in range(40)]
    ledger.append(events[:30])
    ledger.sign_now()
    ledger.append(events[30:])
    return ledger, [e.event_id for e in events]
