"""The events the gateway follows: deployments and retirements from the registry change what it serves,
API-key events change who may call. Each is recorded in the gateway's log (adapters/tables.py) in the
handler's transaction; the follower then applies it to the in-memory state (every replica does, from the
shared log) and the model runtime loads or unloads adapters without a restart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.adapters import tables
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.events.inference import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated
from shared.events.model_versions import ModelDeployed, ModelRetired
from shared.events.payloads import Payload

FOLLOWED: tuple[type[Payload], ...] = (ModelDeployed, ModelRetired, ApiKeyCreated, ApiKeyRotated, ApiKeyRevoked)


@dataclass
class GatewayDeps:
    wake_follower: Callable[[], None]
    """Apply the log now: the follower runs once this handler's transaction has committed."""


def build_handlers(deps: GatewayDeps) -> dict[type[Payload], TypedHandler]:
    async def follow(event: Payload, ctx: HandlerContext) -> None:
        assert ctx.envelope is not None and ctx.session is not None
        tables.record(ctx.session, ctx.envelope.event_id, ctx.envelope.type, event.model_dump(mode="json"))
        deps.wake_follower()

    return dict.fromkeys(FOLLOWED, follow)
