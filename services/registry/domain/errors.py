"""Errors the registry reports to callers; the HTTP layer maps each class to one status code."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: `error` is a short machine-readable code, the message the human explanation."""

    error = "registry_error"


class NotFound(RegistryError):
    error = "not_found"


class Unauthenticated(RegistryError):
    error = "unauthenticated"


class Forbidden(RegistryError):
    error = "forbidden"


class Conflict(RegistryError):
    error = "conflict"


class InvalidRequest(RegistryError):
    error = "invalid_request"
