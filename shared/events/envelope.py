"""The one envelope every message travels in: docs/architecture.md (services and streams), docs/security.md
(its signature)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from shared.ids import uuid7
from shared.json_input import parse_json
from shared.validation import describe_validation_error

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


class EnvelopeError(ValueError):
    """An envelope that cannot be accepted; the message says which field and why."""


class EnvelopeSignature(BaseModel):
    """Ed25519 signature of the producer over the envelope (shared/security/signing.py says over what)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    value: str = Field(min_length=1, max_length=200)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(default_factory=uuid7, min_length=1, max_length=64)
    type: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z_]+)+$")
    version: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = Field(
        min_length=1, max_length=220, description="Signing identity: a service name or `principal:<name>`."
    )
    actor: str = Field(min_length=1, max_length=200, description="Human or system principal responsible.")
    subject: str = Field(min_length=1, max_length=200, description="job_id, model_id, request id...")
    trace: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN, description="W3C traceparent.")
    causation_id: str | None = Field(default=None, description="event_id of the event that caused this one.")
    payload: dict[str, Any]
    signature: EnvelopeSignature | None = None

    @field_validator("occurred_at")
    @classmethod
    def _must_be_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone (UTC)")
        return value.astimezone(UTC)

    # The typed payload made by the one validation, and the wire bytes once serialised: an event is
    # validated once where it is built and once where it is received, and serialised once for the wire.
    _typed: BaseModel | None = PrivateAttr(default=None)
    _wire: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Envelope:
        from shared.events.catalog import typed_payload

        model = typed_payload(self.type, self.version, self.payload)
        object.__setattr__(self, "payload", model.model_dump(mode="json"))
        self._typed = model
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Envelope:
        copy = super().model_copy(update=update, deep=deep)
        copy._wire = None
        if update and "payload" in update:
            copy._typed = None
        return copy

    @property
    def data(self) -> BaseModel:
        """The payload as its typed model."""
        if self._typed is None:
            from shared.events.catalog import spec_for

            self._typed = spec_for(self.type).model.model_validate(self.payload)
        return self._typed

    @property
    def stream(self) -> str:
        from shared.events.catalog import spec_for

        return spec_for(self.type).stream.value

    @property
    def trace_id(self) -> str | None:
        return self.trace.split("-")[1] if self.trace else None

    def to_wire(self) -> bytes:
        if self._wire is None:
            self._wire = self.model_dump_json().encode("utf-8")
        return self._wire

    @classmethod
    def from_wire(cls, raw: bytes | str | dict[str, Any]) -> Envelope:
        """Parse and validate; raises EnvelopeError with a precise reason."""
        try:
            data = raw if isinstance(raw, dict) else parse_json(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EnvelopeError(f"body must be a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise EnvelopeError(describe_validation_error(exc, root="envelope")) from exc
