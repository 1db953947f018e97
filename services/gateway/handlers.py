"""The events the gateway follows: deployments and retirements from the registry change what it serves,
API-key events change who may call. Each is recorded (the projection's log, adapters/tables.py), applied
to the in-memory state, and the model runtime loads or unloads adapters without a restart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.adapters import tables
from services.gateway.domain.state import Change, GatewayState
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.events.inference import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated
from shared.events.model_versions import ModelDeployed, ModelRetired
from shared.events.payloads import Payload

FOLLOWED: tuple[type[Payload], ...] = (ModelDeployed, ModelRetired, ApiKeyCreated, ApiKeyRotated, ApiKeyRevoked)


@dataclass
class GatewayDeps:
    state: GatewayState
    on_change: Callable[[Change], None]
    """The model runtime's reaction (load/unload adapters in the background)."""


def build_handlers(deps: GatewayDeps) -> dict[type[Payload], TypedHandler]:
    async def follow(event: Payload, ctx: HandlerContext) -> None:
        assert ctx.envelope is not None and ctx.session is not None
        payload = event.model_dump(mode="json")
        tables.record(ctx.session, ctx.envelope.event_id, ctx.envelope.type, payload)
        deps.on_change(deps.state.apply(ctx.envelope.type, payload))

    return dict.fromkeys(FOLLOWED, follow)
