"""Wires the gateway: the followed-event log replayed into the routing and key tables before anything is
consumed, the model runtime (engines built on first local route), policies and the DLP detector, the Redis
budget limiter, the journal and the provenance signer, and the HTTP API as a background task."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from services.gateway.adapters import tables
from services.gateway.adapters.model_runtime import ModelRuntime
from services.gateway.domain.state import GatewayState
from services.gateway.handlers import GatewayDeps, build_handlers
from services.gateway.settings import GatewaySettings
from shared.config import Settings
from shared.models.bases import configure_offline, resolve_base
from shared.storage.artifacts import ArtifactStore
from shared.storage.db import Database, create_schema

if TYPE_CHECKING:
    from services.gateway.domain.policy import PolicySet
    from services.gateway.inference import Gateway
    from shared.bus.definition import ServiceDefinition
    from shared.bus.lifecycle import ServiceRuntime

NAME = "gateway"


def state_follower(settings: Settings, models: ModelRuntime) -> tables.StateFollower:
    """The state the followed events left, replayed before the service consumes anything new, and the
    follower that keeps it current."""
    db = Database(settings.database_url_for(NAME))
    create_schema(db.engine, tables.metadata)
    follower = tables.StateFollower(db, GatewayState(), models.on_change)
    follower.catch_up()
    return follower


def model_runtime(settings: Settings, own: GatewaySettings) -> ModelRuntime:
    unpack_dir = settings.path("gateway", "models", ".keep").parent

    def make_pool():  # type: ignore[no-untyped-def]
        from services.gateway.adapters.engine_pool import EnginePool

        return EnginePool(unpack_dir, max_batch=own.max_batch, batch_wait_ms=own.batch_wait_ms,
                          watermark_key=own.watermark_key)

    return ModelRuntime(
        artifacts=ArtifactStore(settings.home_dir / "artifacts"),
        resolve_base=partial(resolve_base, settings=settings),
        make_pool=make_pool,
    )


def build_gateway(runtime: ServiceRuntime, state: GatewayState, models: ModelRuntime, own: GatewaySettings,
                  policies: PolicySet) -> Gateway:
    from services.gateway.adapters.dlp import GatewayDetectors
    from services.gateway.adapters.journal import Journal
    from services.gateway.adapters.rate_limits import RateLimiter
    from services.gateway.adapters.upstream import UpstreamClient
    from services.gateway.domain.provenance import ProvenanceSigner
    from services.gateway.inference import Gateway
    from shared.security.signing import KeyDirectory

    signer = KeyDirectory(runtime.settings.keys_dir).signer(NAME)
    return Gateway(
        settings=own,
        state=state,
        policies=policies,
        detectors=GatewayDetectors(policies),
        limiter=RateLimiter(runtime.redis),
        models=models,
        upstream=UpstreamClient(),
        journal=Journal(runtime.uow, producer=NAME, may_emit=frozenset(runtime.definition.contract().emits)),
        provenance=ProvenanceSigner.from_signer(signer),
    )


def build(settings: Settings) -> ServiceDefinition:
    from services.gateway.adapters.upstream import load_upstreams
    from services.gateway.domain.policy import PolicySet
    from shared.bus.definition import ServiceDefinition
    from shared.http_serving import serve_app

    configure_offline()
    own = GatewaySettings()
    # A broken policies or upstreams file stops the gateway here, with the file and field in the error: it
    # never serves without the policies it was given.
    policies = PolicySet.load(own.policies_file)
    upstreams = load_upstreams(own.upstreams_file)
    models = model_runtime(settings, own)
    follower = state_follower(settings, models)
    state = follower.state
    state.routes.upstreams = {u.name: u for u in upstreams}
    gateway_box: list[Gateway] = []

    async def http_api(runtime: ServiceRuntime) -> None:
        from services.gateway.entrypoints.http import create_app

        gateway = build_gateway(runtime, state, models, own, policies)
        gateway_box.append(gateway)
        for route in state.routes.local_routes():  # serve what was deployed before a restart without a wait
            models.on_change_load(route)
        await serve_app(create_app(gateway), host=own.host, port=own.port,
                        url_file=settings.path("run", "gateway.url"), log_level=settings.log_level,
                        what="gateway API")

    async def close() -> None:
        follower.db.dispose()
        await models.aclose()
        for gateway in gateway_box:
            await gateway.settlements.drain()
            await gateway.upstream.aclose()

    return ServiceDefinition(
        name=NAME,
        handlers=build_handlers(GatewayDeps(wake_follower=follower.wake)),
        metadata=[tables.metadata],
        background=[http_api, follower.run],
        concurrency=1,
        on_stop=[close],
    )
