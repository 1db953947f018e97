"""What a service brings to the bus runtime: its typed handlers, tables and background tasks.

The static contract (what it consumes and may emit) lives in shared/roster.py; a definition is checked
against it when the runtime starts, so the roster and the code cannot drift apart silently."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import MetaData

from shared.events.catalog import CATALOG, spec_for_model
from shared.events.envelope import Envelope
from shared.events.payloads import Payload
from shared.events.streams import ALL_STREAMS
from shared.roster import ServiceSpec
from shared.roster import service as roster_entry

if TYPE_CHECKING:
    from shared.bus.context import HandlerContext
    from shared.bus.lifecycle import ServiceRuntime
    from shared.storage.db import Database

TypedHandler = Callable[[Any, "HandlerContext"], Awaitable[None]]
"""`async def on_job_requested(event: JobRequested, ctx: HandlerContext) -> None`: the typed payload and the
unit of work (the handler's transaction, its outbox, the envelope as received)."""

BatchHandler = Callable[["ServiceRuntime", list[Envelope]], Awaitable[None]]
"""Handles many events in one transaction; must itself be idempotent on event_id (the audit ledger)."""

class PrincipalKeys(Protocol):
    """Where a service finds the keys of `principal:<name>` signers (the registry: its own principals;
    others: shared/bus/principal_keys.py, learnt from principal.* events)."""

    def lookup(self, name: str, key_id: str) -> Any: ...

    def learn(self, envelope: Envelope) -> None: ...


class DefinitionError(RuntimeError):
    """A service definition that contradicts the roster; raised at start, before anything is consumed."""


@dataclass
class ServiceDefinition:
    name: str
    handlers: dict[type[Payload], TypedHandler] = field(default_factory=dict)
    batch_handler: BatchHandler | None = None
    metadata: list[MetaData] = field(default_factory=list)
    background: list[Callable[[ServiceRuntime], Awaitable[None]]] = field(default_factory=list)
    concurrency: int = 1
    on_stop: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    principal_keys: Callable[[Database], PrincipalKeys] | None = None
    """Where the bus finds the keys of `principal:<name>` signers, given the service's own database: the
    registry's principals, or shared/bus/principal_keys.py's projection for a service that does not own
    them (the audit). None: this service accepts no principal-signed events."""
    reclaim_idle_ms: int | None = None
    """How long an entry of this service's group may sit unacknowledged before a peer replica takes it as its
    dead holder's, when TUNEGATE_RECLAIM_IDLE_MS does not say. For a service whose handling never holds an
    entry long (the ledger's short batch transactions), so a replica takes over within seconds of a crash
    instead of the 30 s that a long handler (training, evaluation) needs between keep-alives of a busy loop."""
    spec: ServiceSpec | None = None
    """The roster entry; defaults to shared.roster's entry for `name`. Test and benchmark services that are
    not in the roster pass their own."""

    def contract(self) -> ServiceSpec:
        return self.spec or roster_entry(self.name)

    def subscribed_streams(self) -> list[str]:
        if self.batch_handler is not None:
            return self.contract().streams() if self.spec else [s.value for s in ALL_STREAMS]
        return sorted({spec_for_model(model).stream.value for model in self.handlers})

    def handlers_by_type(self) -> dict[str, TypedHandler]:
        return {spec_for_model(model).type: handler for model, handler in self.handlers.items()}

    def check_against_roster(self) -> None:
        contract = self.contract()
        if self.batch_handler is not None:
            return
        declared = set(contract.consumes)
        handled = set(self.handlers_by_type())
        if declared != handled:
            missing = ", ".join(sorted(declared - handled)) or "-"
            extra = ", ".join(sorted(handled - declared)) or "-"
            raise DefinitionError(
                f"service {self.name}: handlers differ from shared/roster.py (no handler for: {missing}; "
                f"handled but not declared: {extra})"
            )
        unknown = [t for t in contract.emits if t not in CATALOG]
        if unknown:
            raise DefinitionError(f"service {self.name}: declares unknown emitted types {unknown}")
