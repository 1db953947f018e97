"""The routing table: aliases follow deployments, retired and displaced versions stop resolving, tenants
only see their own deployments, and every miss is the same answer (no probing of other tenants)."""

from __future__ import annotations

import pytest

from services.gateway.domain.routes import LocalRoute, RouteNotFound, RouteTable, UpstreamRoute
from services.gateway.domain.state import GatewayState
from shared.events.model_versions import ModelDeployed, ModelRetired

SHA = "a" * 64


def deployed(version: str, alias: str = "support-triage", tenants: tuple[str, ...] = ("acme",),
             watermark: bool = False) -> dict[str, object]:
    return ModelDeployed(
        version_id=version, alias=alias, tenants=list(tenants), base_model="tiny", adapter="lora",
        artifact={"uri": f"cas://sha256/{SHA}", "sha256": SHA}, watermark=watermark,
    ).model_dump(mode="json")


def test_an_alias_follows_its_latest_deployment_and_the_displaced_version_is_unloaded() -> None:
    state = GatewayState()
    first = state.apply("model.deployed", deployed("support-triage.v1"))
    assert [r.version_id for r in first.load] == ["support-triage.v1"] and not first.unload
    second = state.apply("model.deployed", deployed("support-triage.v2", watermark=True))
    assert [r.version_id for r in second.unload] == ["support-triage.v1"]
    route = state.routes.resolve("support-triage", "acme")
    assert isinstance(route, LocalRoute) and route.version_id == "support-triage.v2" and route.watermark
    assert state.routes.resolve("support-triage.v2", "acme") == route
    with pytest.raises(RouteNotFound):
        state.routes.resolve("support-triage.v1", "acme")


def test_a_retired_version_resolves_under_no_name() -> None:
    state = GatewayState()
    state.apply("model.deployed", deployed("support-triage.v1"))
    change = state.apply("model.retired", ModelRetired(version_id="support-triage.v1", reason="erasure",
                                                       alias="support-triage").model_dump(mode="json"))
    assert [r.version_id for r in change.unload] == ["support-triage.v1"]
    for name in ("support-triage", "support-triage.v1"):
        with pytest.raises(RouteNotFound):
            state.routes.resolve(name, "acme")
    assert state.routes.names_for("acme") == []


def test_tenants_see_only_their_deployments_and_a_miss_looks_the_same_for_every_cause() -> None:
    table = RouteTable()
    table.deployed(LocalRoute(version_id="triage.v1", alias="triage", tenants=frozenset({"acme"}),
                              base_model="tiny", adapter="lora", artifact_uri="cas://x", artifact_sha256=SHA))
    table.upstreams["frontier"] = UpstreamRoute(name="frontier", base_url="http://127.0.0.1:1/v1",
                                                upstream_model="gpt", api_key_env=None, tenants=frozenset({"globex"}))
    assert [name for name, _ in table.names_for("acme")] == ["triage", "triage.v1"]
    assert [name for name, _ in table.names_for("globex")] == ["frontier"]
    errors = []
    for name, tenant in (("triage", "globex"), ("frontier", "acme"), ("nothing", "acme")):
        with pytest.raises(RouteNotFound) as caught:
            table.resolve(name, tenant)
        errors.append(type(caught.value))
    assert set(errors) == {RouteNotFound}


def test_an_event_the_gateway_does_not_follow_is_refused() -> None:
    with pytest.raises(ValueError, match=r"does not follow job\.accepted"):
        GatewayState().apply("job.accepted", {})
