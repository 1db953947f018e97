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


class MalformedBody(RegistryError):
    """A body sent as JSON that does not parse. Reported only once the caller has authenticated
    (entrypoints/limits.py): before that, nobody learns how the registry reads bodies."""

    error = "invalid_json"


class SubmissionRefused(RegistryError):
    """A job.requested the registry will not record: unsigned, signed by an unknown, revoked or unauthorised
    principal, or with a signature that does not verify. Raised from the handler, so the bus keeps the
    entry in its dead-letter stream with this reason."""

    error = "submission_refused"
