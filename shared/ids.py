"""Identifiers: time-ordered ones (UUIDv7, RFC 9562) so ids sort by creation time in logs and databases, and
the one strict pattern every id must match before it becomes part of a file path."""

from __future__ import annotations

import os
import re
import time
import uuid
from typing import Annotated

from pydantic import AfterValidator


def uuid7() -> str:
    """Return a UUIDv7 string: 48-bit Unix milliseconds, version and variant bits, 74 random bits."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def new_job_id() -> str:
    return f"job_{uuid7().replace('-', '')}"


SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
"""Every id that becomes a file or directory name: a letter or digit first (so never '.', '..' or a hidden
file), then letters, digits, '_', '.', '-'; no separators, so it can only ever name one entry in one folder."""
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN)


class UnsafeIdError(ValueError):
    """An id refused because it could name something other than one entry in its own folder."""


def validate_safe_name(value: str, what: str = "name") -> str:
    """`value` unchanged when it matches SAFE_NAME_PATTERN; else UnsafeIdError saying what and why."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:79] + "…"
        raise UnsafeIdError(
            f"{what} {shown} is not allowed: use 1-128 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (it becomes a file name)"
        )
    return value


def validate_job_id(value: str) -> str:
    return validate_safe_name(value, "job id")


JobId = Annotated[str, AfterValidator(validate_job_id)]
"""A job id in a pydantic model: validated wherever a payload or request carrying it is parsed."""


MODEL_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""Model names and aliases: lower-case letters, digits and inner hyphens, 1-64 characters (they become file
names and gateway model names)."""
VERSION_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.v[1-9][0-9]{0,5}$"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_VERSION_ID = re.compile(VERSION_ID_PATTERN)


def validate_model_name(value: str, what: str = "model name") -> str:
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-64 lower-case letters, digits or inner '-', starting and "
            "ending with a letter or digit"
        )
    return value


def validate_version_id(value: str) -> str:
    if not isinstance(value, str) or not _VERSION_ID.fullmatch(value):
        raise ValueError(
            f"model version id {value!r} is not allowed: expected '<model name>.v<number>', e.g. 'support-triage.v3'"
        )
    return value


ModelName = Annotated[str, AfterValidator(validate_model_name)]
ModelVersionId = Annotated[str, AfterValidator(validate_version_id)]


def model_name_from(text: str) -> str:
    """A model name from free text (a use case's name): lower-cased, runs of other characters become '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")
    return slug or "model"


def version_id_of(model_name: str, number: int) -> str:
    return validate_version_id(f"{model_name}.v{number}")
