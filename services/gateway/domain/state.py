"""What the gateway serves and to whom: the routing table and the API keys, as one projection of the events
it follows. `apply` is the one place an event changes them; handlers and the start-up replay both call it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.gateway.domain.keys import KeyTable
from services.gateway.domain.routes import LocalRoute, RouteTable
from shared.events.inference import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated
from shared.events.model_versions import ModelDeployed, ModelRetired


@dataclass(frozen=True)
class Change:
    """What an applied event means for the model runtime: adapters to load or unload."""

    load: tuple[LocalRoute, ...] = ()
    unload: tuple[LocalRoute, ...] = ()


@dataclass
class GatewayState:
    routes: RouteTable = field(default_factory=RouteTable)
    keys: KeyTable = field(default_factory=KeyTable)

    def apply(self, event_type: str, payload: dict[str, Any]) -> Change:
        if event_type == "model.deployed":
            deployed = ModelDeployed.model_validate(payload)
            route = LocalRoute(
                version_id=deployed.version_id, alias=deployed.alias, tenants=frozenset(deployed.tenants),
                base_model=deployed.base_model, adapter=deployed.adapter, artifact_uri=deployed.artifact.uri,
                artifact_sha256=deployed.artifact.sha256, watermark=deployed.watermark,
            )
            displaced = self.routes.deployed(route)
            return Change(load=(route,), unload=(displaced,) if displaced else ())
        if event_type == "model.retired":
            retired = self.routes.retired(ModelRetired.model_validate(payload).version_id)
            return Change(unload=(retired,) if retired else ())
        if event_type == "apikey.created":
            self.keys.apply_created(ApiKeyCreated.model_validate(payload))
        elif event_type == "apikey.rotated":
            self.keys.apply_rotated(ApiKeyRotated.model_validate(payload))
        elif event_type == "apikey.revoked":
            self.keys.apply_revoked(ApiKeyRevoked.model_validate(payload))
        else:
            raise ValueError(f"the gateway does not follow {event_type}")
        return Change()
