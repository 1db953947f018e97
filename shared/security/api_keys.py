"""The gateway API key's secret: one format, made by the registry and checked by the gateway.

`tgk_<16 id characters>_<43 URL-safe random characters>` for key id `key_<16 id characters>`: the id part
has a fixed length, so the secret splits unambiguously although the random part may contain '_'. Only its
SHA-256 is stored or announced (a 256-bit random secret needs no slow KDF)."""

from __future__ import annotations

import hashlib
import re
import secrets

from shared.events.inference import API_KEY_ID_PATTERN

SECRET_PREFIX = "tgk_"
SECRET_PATTERN = re.compile(r"^tgk_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$")
KEY_ID = re.compile(API_KEY_ID_PATTERN)
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_key_id() -> str:
    return "key_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def new_secret(key_id: str) -> str:
    if not KEY_ID.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} does not match {API_KEY_ID_PATTERN}")
    return f"{SECRET_PREFIX}{key_id[4:]}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_id_in(secret: str) -> str | None:
    """The key id a well-formed secret names, or None."""
    found = SECRET_PATTERN.fullmatch(secret)
    return "key_" + found.group(1) if found else None
