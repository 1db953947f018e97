"""Principals, roles and bearer tokens. Tokens are random, shown once, and only their SHA-256 is stored:
a leaked database does not leak credentials, and a 256-bit random token needs no slow KDF."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal, get_args

Role = Literal["requester", "approver", "deployer", "auditor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "tg_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"principal name {name!r}: use 1-200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def validate_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise ValueError(f"roles: at least one role is required (one of {', '.join(ROLES)})")
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"roles: unknown role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    return sorted(set(roles), key=ROLES.index)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
