"""Which model a name resolves to, for which tenant: the gateway's routing table, pure.

A name is a deployed alias (`support-triage`), a version id (`support-triage.v3`) or an upstream route
name. The table is built from the registry's `model.deployed` / `model.retired` events (local routes) and
from the upstream routes file; it holds no I/O. An alias follows its latest deployment; a version stays
callable by id while it is deployed to some alias and not retired."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

RouteKind = Literal["local", "upstream"]


class RouteNotFound(LookupError):
    """The name is unknown, retired, or not deployed to the caller's tenant (one answer for all three, so a
    caller cannot probe other tenants' deployments)."""


@dataclass(frozen=True)
class LocalRoute:
    """A deployed version served from this gateway: `base_model` with the version's artefact on it."""

    version_id: str
    alias: str
    tenants: frozenset[str]
    base_model: str
    adapter: Literal["lora", "full"]
    artifact_uri: str
    artifact_sha256: str
    watermark: bool = False
    kind: RouteKind = "local"

    @property
    def served_name(self) -> str:
        return self.version_id


@dataclass(frozen=True)
class UpstreamRoute:
    """A model behind an external OpenAI-compatible endpoint; the key comes from the named variable."""

    name: str
    base_url: str
    upstream_model: str
    api_key_env: str | None
    tenants: frozenset[str]
    timeout_s: float = 60.0
    kind: RouteKind = "upstream"

    @property
    def served_name(self) -> str:
        return self.name


Route = LocalRoute | UpstreamRoute


@dataclass
class RouteTable:
    versions: dict[str, LocalRoute] = field(default_factory=dict)
    """Deployed, not retired versions by id."""
    aliases: dict[str, str] = field(default_factory=dict)
    """alias -> version id it serves now."""
    upstreams: dict[str, UpstreamRoute] = field(default_factory=dict)

    def deployed(self, route: LocalRoute) -> LocalRoute | None:
        """A version now serves `route.alias`; returns the route it displaced, if any. The displaced version is
        deprecated by the registry, so it is no longer callable by id either."""
        previous_id = self.aliases.get(route.alias)
        previous = self.versions.pop(previous_id, None) if previous_id and previous_id != route.version_id else None
        self.versions[route.version_id] = route
        self.aliases[route.alias] = route.version_id
        return previous

    def retired(self, version_id: str) -> LocalRoute | None:
        route = self.versions.pop(version_id, None)
        for alias, target in list(self.aliases.items()):
            if target == version_id:
                del self.aliases[alias]
        return route

    def resolve(self, name: str, tenant: str) -> Route:
        route: Route | None = self.upstreams.get(name)
        if route is None:
            version_id = self.aliases.get(name, name)
            route = self.versions.get(version_id)
        if route is None or tenant not in route.tenants:
            raise RouteNotFound(name)
        return route

    def names_for(self, tenant: str) -> list[tuple[str, Route]]:
        """What `GET /v1/models` lists for a tenant: aliases, version ids and upstream names."""
        out: list[tuple[str, Route]] = []
        for alias, version_id in sorted(self.aliases.items()):
            route = self.versions.get(version_id)
            if route and tenant in route.tenants:
                out.append((alias, route))
        out += [(vid, r) for vid, r in sorted(self.versions.items()) if tenant in r.tenants]
        out += [(n, r) for n, r in sorted(self.upstreams.items()) if tenant in r.tenants]
        return out

    def local_routes(self) -> list[LocalRoute]:
        return list(self.versions.values())

    def with_upstreams(self, upstreams: list[UpstreamRoute]) -> RouteTable:
        return replace(self, upstreams={u.name: u for u in upstreams})
