"""Two requests (or replicas) that read the same record and both write it back: the second must be refused,
never silently overwrite the first. On PostgreSQL, READ COMMITTED lets a transaction's later reads see
another's commit, and a save used to re-read the row at its new version and write over it: a rejection
lost under an approval, one version deployed under two aliases, a revoked principal or API key un-revoked
by a concurrent rotation (found by racing two registry processes on one database). These tests replay
the interleaving deterministically with two sessions; SQLite (one writer, snapshot reads) refuses the
stale writer by itself, so they run where TUNEGATE_TEST_DATABASE_URL names a PostgreSQL."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.adapters.api_key_repository import add_key, require_key, save_key
from services.registry.adapters.model_repository import load_alias, save_alias
from services.registry.adapters.repository import add_principal, require_principal, save_principal
from services.registry.adapters.tables import METADATA
from services.registry.domain.api_keys import ApiKey
from services.registry.domain.errors import Conflict
from services.registry.domain.principals import Principal
from shared.storage.db import Database, create_schema
from tests.support import postgres_schema, postgres_test_url

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(postgres_test_url() is None, reason="needs TUNEGATE_TEST_DATABASE_URL (PostgreSQL)")


@pytest.fixture
def db() -> Iterator[Database]:
    base = postgres_test_url()
    assert base is not None
    with postgres_schema(base, "writes") as url:
        database = Database(url)
        create_schema(database.engine, METADATA)
        try:
            yield database
        finally:
            database.dispose()


def test_a_second_writer_of_a_versioned_record_is_refused(db: Database) -> None:
    from services.registry.domain.deployments import ModelAlias

    with db.transaction() as session:
        save_alias(session, ModelAlias.new("support", NOW))
    first, second = db.new_session(), db.new_session()
    try:
        mine, theirs = load_alias(first, "support"), load_alias(second, "support")
        assert mine is not None and theirs is not None and mine.version == theirs.version
        theirs.version_id, theirs.tenants = "support.v2", ["acme"]
        save_alias(second, theirs)
        second.commit()
        gc.collect()  # the first request kept only its domain object, as a request handler does
        mine.version_id, mine.tenants = "support.v1", ["other"]
        with pytest.raises(Conflict, match="alias support changed while this request ran"):
            save_alias(first, mine)
        first.rollback()
    finally:
        first.close()
        second.close()
    with db.transaction() as session:
        stored = load_alias(session, "support")
        assert stored is not None and (stored.version_id, stored.tenants) == ("support.v2", ["acme"])


def test_a_rotation_read_before_a_revocation_cannot_undo_it(db: Database) -> None:
    with db.transaction() as session:
        add_principal(session, Principal.create(name="ops-admin", roles=["admin"], token_sha256="0" * 64, key=None,
                                                by="root", now=NOW))
        add_key(session, ApiKey.create(key_id="key_0123456789abcdef", name="app", tenant="acme", models=["*"],
                                       requests_per_minute=60, tokens_per_day=1_000, key_sha256="1" * 64,
                                       by="root", now=NOW))
    for load, save, what in ((require_principal, save_principal, "ops-admin"),
                             (require_key, save_key, "key_0123456789abcdef")):
        rotating, revoking = db.new_session(), db.new_session()
        try:
            rotated, revoked = load(rotating, what), load(revoking, what)
            revoked.revoke(by="root", reason="left the company", now=NOW + timedelta(minutes=1))
            save(revoking, revoked)
            revoking.commit()
            gc.collect()
            if isinstance(rotated, Principal):
                rotated.rotate(token_sha256="2" * 64, key=None, by="ops-admin", now=NOW + timedelta(minutes=2))
            else:
                rotated.rotate(key_sha256="2" * 64, by="root", now=NOW + timedelta(minutes=2))
            with pytest.raises(Conflict, match="was revoked while this request ran"):
                save(rotating, rotated)
            rotating.rollback()
        finally:
            rotating.close()
            revoking.close()
        with db.transaction() as session:
            assert load(session, what).revoked_at is not None
