"""Event contract: envelope, typed payloads, catalog of types and their streams."""

from shared.events.catalog import CATALOG, EventSpec, spec_for, stream_for, types_on
from shared.events.envelope import Envelope, EnvelopeError
from shared.events.streams import ALL_STREAMS, Stream, dlq_name

__all__ = [
    "ALL_STREAMS",
    "CATALOG",
    "Envelope",
    "EnvelopeError",
    "EventSpec",
    "Stream",
    "dlq_name",
    "spec_for",
    "stream_for",
    "types_on",
]
