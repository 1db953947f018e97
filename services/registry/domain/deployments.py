"""Deployment: which version an alias serves, to which gateway tenants, and rollback.

An alias (the model name gateway clients call, e.g. `support-triage`) is an aggregate of its own with the
history of the versions it served. Deploying a version under an alias that served another one deprecates
that one in the same act; rollback puts the alias back on the newest version it served before that is
neither retired nor itself rolled away from, and deprecates the current one. Deploying and rolling back need
the `deployer` role; the version must be approved (or deprecated, for a redeploy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.registry.domain.errors import Conflict, Forbidden, InvalidRequest
from services.registry.domain.model_states import ModelState
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.principals import Principal
from services.registry.domain.reward_models import deploy_refusal
from shared.ids import validate_model_name

DEPLOYER_ROLE = "deployer"
MAX_TENANTS = 100


@dataclass(frozen=True)
class AliasMove:
    version_id: str
    tenants: list[str]
    by: str
    at: datetime
    rollback_from: str | None = None
    """On a rollback: the version the alias was taken away from (never a rollback target again)."""
    watermark: bool = False
    """The gateway watermarks the text of this deployment."""


@dataclass(kw_only=True, eq=False)
class ModelAlias:
    name: str
    version_id: str | None
    tenants: list[str]
    updated_at: datetime
    history: list[AliasMove] = field(default_factory=list)
    version: int = 0

    @classmethod
    def new(cls, name: str, now: datetime) -> ModelAlias:
        try:
            validate_model_name(name, "alias")
        except ValueError as exc:
            raise InvalidRequest(f"alias: {exc}") from None
        return cls(name=name, version_id=None, tenants=[], updated_at=now)

    @property
    def watermark(self) -> bool:
        """Whether the alias's current deployment is watermarked (a rollback keeps the setting)."""
        return self.history[-1].watermark if self.history else False

    def rollback_candidates(self) -> list[str]:
        """Versions it served before, newest first, except the current one and any it was rolled back from;
        the caller takes the first that is still servable (not retired)."""
        rolled_away = {move.rollback_from for move in self.history if move.rollback_from}
        seen: list[str] = []
        for move in reversed(self.history):
            candidate = move.version_id
            if candidate != self.version_id and candidate not in rolled_away and candidate not in seen:
                seen.append(candidate)
        return seen

    def point(
        self, version_id: str | None, tenants: list[str], by: str, now: datetime, rollback_from: str | None = None,
        watermark: bool = False,
    ) -> None:
        self.version_id, self.tenants, self.updated_at = version_id, list(tenants), now
        if version_id is not None:
            self.history.append(AliasMove(version_id, list(tenants), by, now, rollback_from, watermark))


def check_deployer(principal: Principal, action: str) -> None:
    if DEPLOYER_ROLE not in principal.roles:
        raise Forbidden(
            f"principal {principal.name!r} has roles [{', '.join(principal.roles)}]; {action} needs the "
            f"'{DEPLOYER_ROLE}' role"
        )


def check_tenants(tenants: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(t.strip() for t in tenants if t.strip()))
    if not cleaned:
        raise InvalidRequest("tenants: name at least one gateway tenant that may call the model")
    if len(cleaned) > MAX_TENANTS:
        raise InvalidRequest(f"tenants: at most {MAX_TENANTS}")
    return cleaned


def deploy(
    version: ModelVersion,
    alias: ModelAlias,
    current: ModelVersion | None,
    *,
    tenants: list[str],
    by: Principal,
    now: datetime,
    method_kind: str,
    watermark: bool = False,
) -> None:
    """Serve `version` under `alias` to `tenants`; `current` is the version the alias serves now (if another).
    `method_kind`: how the version's job trained it (a reward model is never served).
    `watermark`: the gateway marks the text it serves with a statistical watermark."""
    check_deployer(by, f"deploying model version {version.id}")
    if (refusal := deploy_refusal(method_kind, version.id)) is not None:
        raise Conflict(refusal)
    scope = check_tenants(tenants)
    if version.state not in (ModelState.APPROVED, ModelState.DEPRECATED, ModelState.DEPLOYED):
        raise Conflict(
            f"model version {version.id} is {version.state.value}; only an approved version (or a deprecated one, "
            "to redeploy it) can be deployed"
        )
    if current is not None and current.id == version.id:
        current = None  # a new scope for the version the alias already serves
    replaces = current.id if current is not None else None
    if current is not None:
        current.deprecate(by=by.name, reason=f"alias {alias.name!r} moved to {version.id} by {by.name}", now=now)
    version.serve(alias=alias.name, tenants=scope, by=by.name, now=now, replaces=replaces, rollback=False,
                  watermark=watermark)
    alias.point(version.id, scope, by.name, now, None, watermark)


def rollback(
    alias: ModelAlias,
    current: ModelVersion | None,
    target: ModelVersion,
    *,
    by: Principal,
    now: datetime,
    reason: str = "",
) -> None:
    """Put `alias` back on `target` (its rollback target), deprecating what it serves now."""
    check_deployer(by, f"rolling back alias {alias.name!r}")
    if target.state not in (ModelState.DEPRECATED, ModelState.APPROVED):
        raise Conflict(
            f"alias {alias.name!r} cannot roll back to {target.id}: it is {target.state.value} (retired versions are "
            "never served again)"
        )
    tenants = alias.tenants or next((m.tenants for m in reversed(alias.history) if m.version_id == target.id), [])
    if current is not None:
        why = f"alias {alias.name!r} rolled back to {target.id} by {by.name}" + (f": {reason}" if reason else "")
        current.deprecate(by=by.name, reason=why, now=now)
    target.serve(
        alias=alias.name,
        tenants=check_tenants(tenants),
        by=by.name,
        now=now,
        replaces=None if current is None else current.id,
        rollback=True,
        watermark=alias.watermark,
    )
    alias.point(target.id, tenants, by.name, now, None if current is None else current.id, alias.watermark)


def release(alias: ModelAlias, version: ModelVersion, *, by: str, now: datetime) -> None:
    """The alias's version was retired: it serves nothing until the next deploy or rollback."""
    if alias.version_id == version.id:
        alias.point(None, [], by, now)
