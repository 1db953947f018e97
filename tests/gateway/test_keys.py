"""The gateway's key table, pure: built from apikey.* facts, a secret opens its key until rotated or
revoked, idempotent under redelivery, and the scope check by model name."""

from __future__ import annotations

import pytest

from services.gateway.domain.keys import (
    KeyRejected,
    KeyTable,
    MalformedKey,
    RevokedKey,
    UnknownKey,
    hash_secret,
    key_id_of,
    may_call,
)
from shared.events.inference import ApiKeyCreated, ApiKeyLimits, ApiKeyRevoked, ApiKeyRotated

KEY_ID = "key_0123456789abcdef"
SECRET = "tgk_0123456789abcdef_" + "A_b-" * 10 + "xyz"  # 43 random characters, '_' among them
OTHER = "tgk_0123456789abcdef_" + "Z" * 43


def table_with(models: list[str], secret: str = SECRET) -> KeyTable:
    table = KeyTable()
    assert table.apply_created(created(models, hash_secret(secret)))
    return table


def created(models: list[str], key_sha256: str, tenant: str = "acme") -> ApiKeyCreated:
    return ApiKeyCreated(
        key_id=KEY_ID, name="bot", tenant=tenant, models=models, key_sha256=key_sha256, created_by="root",
        limits=ApiKeyLimits(requests_per_minute=50, tokens_per_day=1000),
    )


def rotated(key_sha256: str, key_id: str = KEY_ID) -> ApiKeyRotated:
    return ApiKeyRotated(key_id=key_id, key_sha256=key_sha256, rotated_by="root")


def test_a_secret_opens_its_key_until_rotated_then_revoked() -> None:
    table = table_with(["support-triage"])
    key = table.authenticate(SECRET)
    assert (key.key_id, key.tenant, key.limits.requests_per_minute, key.limits.tokens_per_day) == (
        KEY_ID, "acme", 50, 1000,
    )
    assert not table.apply_created(created(["*"], "0" * 64, tenant="other")), "a redelivered creation changes nothing"
    assert table.authenticate(SECRET).tenant == "acme"

    assert table.apply_rotated(rotated(hash_secret(OTHER)))
    with pytest.raises(UnknownKey):
        table.authenticate(SECRET)
    assert table.authenticate(OTHER).key_id == KEY_ID

    revocation = ApiKeyRevoked(key_id=KEY_ID, reason="leaked", revoked_by="root")
    assert table.apply_revoked(revocation) and not table.apply_revoked(revocation)
    with pytest.raises(RevokedKey) as revoked:
        table.authenticate(OTHER)
    assert not table.apply_rotated(rotated(hash_secret(SECRET))), "revoked keys stay revoked"
    with pytest.raises(UnknownKey) as unknown:
        table.authenticate(SECRET)
    assert str(revoked.value) == str(unknown.value), "a caller cannot tell revoked from unknown"
    assert not table.apply_rotated(rotated("1" * 64, key_id="key_ffffffffffffffff"))


@pytest.mark.parametrize(
    "presented",
    ["", "tg_abc", "tgk_0123456789abcdef", "tgk_0123456789ABCDEF_" + "a" * 43, "tgk_0123456789abcdef_" + "a" * 42,
     "tgk_0123456789abcdef_" + "a" * 42 + "!", "Bearer " + SECRET],
)
def test_malformed_secrets_are_refused_before_any_lookup(presented: str) -> None:
    with pytest.raises(MalformedKey) as refused:
        table_with(["*"]).authenticate(presented)
    assert isinstance(refused.value, KeyRejected) and "malformed API key" in str(refused.value)


def test_a_secret_must_match_the_key_id_it_names() -> None:
    assert key_id_of(SECRET) == KEY_ID
    impostor = "tgk_ffffffffffffffff_" + SECRET[21:]
    table = table_with(["*"], secret=SECRET)
    table.by_hash[hash_secret(impostor)] = KEY_ID  # even a hash on file under another id opens nothing
    with pytest.raises(UnknownKey):
        table.authenticate(impostor)


def test_scope_by_name_alias_version_or_everything() -> None:
    key = table_with(["support-triage"]).authenticate(SECRET)
    route = {"support-triage", "support-triage.v3"}
    assert may_call(key, "support-triage", route)
    assert may_call(key, "support-triage.v3", route), "the version the alias serves, by its id"
    assert not may_call(key, "billing", {"billing", "billing.v1"})
    everything = table_with(["*"])
    assert may_call(everything.authenticate(SECRET), "billing", {"billing"})
    assert everything.may_call(everything.authenticate(SECRET), "billing", {"billing"}), "the table's own spelling"
