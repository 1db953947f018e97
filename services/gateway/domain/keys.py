"""The gateway's API keys, pure: what the registry's `apikey.created/.rotated/.revoked` events say, and the
check of a secret a client presents.

The secret's format is shared/security/api_keys.py (the registry makes secrets there too). Only the
SHA-256 of the whole secret is known here; a lookup by hash needs no constant-time comparison, and the
errors a caller sees do not say whether a well-formed secret was never issued, rotated out or revoked."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Protocol

from shared.security.api_keys import hash_secret, key_id_in

__all__ = ["hash_secret"]

ANY_MODEL = "*"


class KeyRejected(PermissionError):
    """A presented secret that opens nothing. `public_reason` is what a client is told."""

    public_reason = "invalid API key (wrong, rotated or revoked)"


class MalformedKey(KeyRejected):
    public_reason = "malformed API key: expected 'tgk_' followed by the key's id and secret, as the registry issued it"


class UnknownKey(KeyRejected):
    """Well formed, but no key has this hash (never issued, or rotated out)."""


class RevokedKey(KeyRejected):
    """The hash belongs to a revoked key: same public reason as an unknown one."""


class LimitFacts(Protocol):
    @property
    def requests_per_minute(self) -> int: ...
    @property
    def tokens_per_day(self) -> int: ...


class KeyCreatedFacts(Protocol):
    """The fields of an `apikey.created` payload this table needs (the wire type has them)."""

    @property
    def key_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def models(self) -> Collection[str]: ...
    @property
    def limits(self) -> LimitFacts: ...
    @property
    def key_sha256(self) -> str: ...


class KeyRotatedFacts(Protocol):
    @property
    def key_id(self) -> str: ...
    @property
    def key_sha256(self) -> str: ...


class KeyRevokedFacts(Protocol):
    @property
    def key_id(self) -> str: ...


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int
    tokens_per_day: int


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    tenant: str
    models: frozenset[str]
    limits: KeyLimits
    key_sha256: str
    revoked: bool = False


def key_id_of(secret: str) -> str:
    """The key id a well-formed secret names; raises MalformedKey otherwise."""
    key_id = key_id_in(secret)
    if key_id is None:
        raise MalformedKey(MalformedKey.public_reason)
    return key_id


@dataclass
class KeyTable:
    """Keys by id, and the hash of each live secret. Events may arrive more than once: each apply is
    idempotent, and a rotation or revocation of a key never created here is ignored (returns False)."""

    keys: dict[str, ApiKey] = field(default_factory=dict)
    by_hash: dict[str, str] = field(default_factory=dict)

    def apply_created(self, created: KeyCreatedFacts) -> bool:
        """`created` is an `apikey.created` payload (shared/events/inference.py ApiKeyCreated) or anything
        with its fields."""
        if created.key_id in self.keys:
            return False
        self.keys[created.key_id] = ApiKey(
            key_id=created.key_id,
            name=created.name,
            tenant=created.tenant,
            models=frozenset(created.models),
            limits=KeyLimits(created.limits.requests_per_minute, created.limits.tokens_per_day),
            key_sha256=created.key_sha256,
        )
        self.by_hash[created.key_sha256] = created.key_id
        return True

    def apply_rotated(self, rotated: KeyRotatedFacts) -> bool:
        """The old secret stops at once; a rotation of a revoked key changes nothing."""
        key = self.keys.get(rotated.key_id)
        if key is None or key.revoked:
            return False
        self.by_hash.pop(key.key_sha256, None)
        self.keys[key.key_id] = replace(key, key_sha256=rotated.key_sha256)
        self.by_hash[rotated.key_sha256] = key.key_id
        return True

    def apply_revoked(self, revoked: KeyRevokedFacts) -> bool:
        key = self.keys.get(revoked.key_id)
        if key is None or key.revoked:
            return False
        self.keys[key.key_id] = replace(key, revoked=True)
        return True

    def authenticate(self, secret: str) -> ApiKey:
        """The key a secret opens; raises MalformedKey, UnknownKey or RevokedKey (all KeyRejected)."""
        claimed_id = key_id_of(secret.strip())
        key_id = self.by_hash.get(hash_secret(secret.strip()))
        if key_id is None or key_id != claimed_id:
            raise UnknownKey(KeyRejected.public_reason)
        key = self.keys[key_id]
        if key.revoked:
            raise RevokedKey(KeyRejected.public_reason)
        return key

    def may_call(self, key: ApiKey, model_name: str, route_names: set[str] | frozenset[str]) -> bool:
        return may_call(key, model_name, route_names)


def may_call(key: ApiKey, model_name: str, route_names: set[str] | frozenset[str]) -> bool:
    """Whether `key` may call the model the client named `model_name`. `route_names` are the names the
    resolved route answers to (its alias and version id, or its upstream name): a key scoped to an alias
    may call the version that alias serves now by its id, and the other way round. The tenant is checked
    when the route is resolved for `key.tenant`."""
    if ANY_MODEL in key.models:
        return True
    return bool(key.models & ({model_name} | set(route_names)))
