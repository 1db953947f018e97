"""The roster: every tunegate service, the event types it consumes and the types it may emit.

This is the one home of those facts. The bus runtime refuses a service whose handler table differs from
its `consumes`, refuses to emit a type not in its `emits`, and refuses to deliver an event whose producer
may not emit that type (shared/security/authorization.py). The supervisor (`tunegate up`/`status`), the
deployment-manifest tests and docs/asyncapi.yaml are derived from it. Importing it is cheap (no service
code): the CLI reads it on every start.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.catalog import CATALOG
from shared.events.streams import ALL_STREAMS

EVERY_TYPE = "*"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    summary: str
    consumes: tuple[str, ...]
    emits: tuple[str, ...]
    bootstrap: str = ""
    """`module:function` that builds the service's runtime definition from Settings."""
    http: str = ""
    """`module:function` that builds the service's HTTP app, if it serves one."""
    settings: str = "shared.config:Settings"
    """`module:class` of the settings the service reads beyond shared.config.Settings (its own prefix)."""
    lease_namespace: str = ""
    """Redis keys `tunegate:<namespace>:*` of its work leases (shared/stack/lease.py), if it takes any."""

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    def consumes_every_type(self) -> bool:
        return self.consumes == (EVERY_TYPE,)

    def streams(self) -> list[str]:
        if self.consumes_every_type():
            return [s.value for s in ALL_STREAMS]
        return sorted({CATALOG[t].stream.value for t in self.consumes})


@dataclass(frozen=True)
class ExternalProducer:
    """Who, outside the services, may put events on the bus: people and upstream systems, each signing as
    `principal:<name>` with the key the registry holds for it."""

    name: str
    summary: str
    emits: tuple[str, ...]


@dataclass(frozen=True)
class Reserved:
    """Catalog types for services not built yet: declared so the contract is complete, with the service
    (and issue) they wait for."""

    waits_for: str
    types: tuple[str, ...]


AUDIT = ServiceSpec(
    name="audit",
    summary="Append-only ledger of every event: hash chain, RFC 9162 Merkle tree, signed tree heads.",
    consumes=(EVERY_TYPE,),
    emits=("bus.event.rejected", "bus.event.dead_lettered"),
    bootstrap="services.audit.bootstrap:build",
)
REGISTRY = ServiceSpec(
    name="registry",
    summary="Jobs, principals, approvals and model versions: intake, the approval gate, the job state machine, "
            "model lifecycle, aliases and AIBOMs, incidents, evidence packs, HTTP API.",
    consumes=(
        "job.requested",
        "dataset.scanned",
        "dataset.scan.failed",
        "training.progress",
        "training.completed",
        "training.failed",
        "training.cancelled",
        "evaluation.started",
        "evaluation.completed",
        "evaluation.failed",
        "dataset.erasure.shredded",
        "model.drift.detected",
        "model.memorisation.detected",
    ),
    emits=(
        "job.accepted",
        "job.rejected",
        "job.state_changed",
        "approval.requested",
        "approval.granted",
        "approval.rejected",
        "approval.expired",
        "dataset.scan.requested",
        "training.requested",
        "training.cancel.requested",
        "evaluation.requested",
        "model.registered",
        "model.state_changed",
        "model.approval.granted",
        "model.deployed",
        "model.retired",
        "dataset.erasure.requested",
        "dataset.erasure.progressed",
        "dataset.erasure.completed",
        "incident.opened",
        "incident.updated",
        "incident.closed",
        "principal.created",
        "principal.rotated",
        "principal.revoked",
        "apikey.created",
        "apikey.rotated",
        "apikey.revoked",
        "bus.event.rejected",
        "bus.event.dead_lettered",
    ),
    bootstrap="services.registry.bootstrap:build",
    http="services.registry.entrypoints.http:create_app",
    settings="services.registry.settings:RegistryAPISettings",
)
SCANNER = ServiceSpec(
    name="scanner",
    summary="Dataset DLP: validation, Presidio detection, consent, redaction, fingerprint; erasure of its copies.",
    consumes=("dataset.scan.requested", "dataset.erasure.progressed"),
    emits=(
        "dataset.scanned", "dataset.scan.failed", "dataset.erasure.shredded", "bus.event.rejected",
        "bus.event.dead_lettered",
    ),
    bootstrap="services.scanner.bootstrap:build",
)
TRAINER = ServiceSpec(
    name="trainer",
    summary="Training workers: SFT | DPO | CPT, LoRA | full, DP-SGD, leases with fencing, resume.",
    consumes=("training.requested", "training.cancel.requested"),
    emits=(
        "training.started",
        "training.progress",
        "training.checkpointed",
        "training.completed",
        "training.failed",
        "training.cancelled",
        "bus.event.rejected",
        "bus.event.dead_lettered",
    ),
    bootstrap="services.trainer.bootstrap:build",
    settings="services.trainer.config:TrainerSettings",
    lease_namespace="training",
)
EVALUATOR = ServiceSpec(
    name="evaluator",
    summary="Evaluation of trained artefacts against their base: quality, memorisation, leakage, red team, "
            "bias, hallucination; the release gate; recurring re-evaluation of deployed versions and drift "
            "of their production traffic.",
    consumes=(
        "training.completed",
        "evaluation.requested",
        "evaluation.scheduled",
        "model.deployed",
        "model.retired",
        "inference.completed",
        "inference.blocked",
    ),
    emits=(
        "evaluation.started",
        "evaluation.completed",
        "evaluation.failed",
        "evaluation.scheduled",
        "model.drift.detected",
        "model.memorisation.detected",
        "bus.event.rejected",
        "bus.event.dead_lettered",
    ),
    bootstrap="services.evaluator.bootstrap:build",
    settings="services.evaluator.settings:EvaluatorSettings",
    lease_namespace="evaluation",
)

GATEWAY = ServiceSpec(
    name="gateway",
    summary="Inference gateway: OpenAI-compatible API over deployed versions (many LoRA adapters on one base) "
            "and upstream models; API keys, budgets, policy and DLP on every prompt and response, provenance.",
    consumes=("model.deployed", "model.retired", "apikey.created", "apikey.rotated", "apikey.revoked"),
    emits=("inference.completed", "inference.blocked", "bus.event.rejected", "bus.event.dead_lettered"),
    bootstrap="services.gateway.bootstrap:build",
    http="services.gateway.entrypoints.http:create_app",
    settings="services.gateway.settings:GatewaySettings",
    lease_namespace="gateway",
)

SERVICES: tuple[ServiceSpec, ...] = (AUDIT, REGISTRY, SCANNER, TRAINER, EVALUATOR, GATEWAY)
"""Start order of `tunegate up`: the audit ledger first so it sees everything."""

PRINCIPALS = ExternalProducer(
    name="principal",
    summary="People and upstream systems, authenticated by the registry's principal keys.",
    emits=("job.requested",),
)

RESERVED: tuple[Reserved, ...] = ()


def service(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r} (known: {', '.join(s.name for s in SERVICES)})")


def service_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in SERVICES)


def producers_of(event_type: str) -> frozenset[str]:
    """Identities allowed to emit a type: service names, and `principal` for external producers."""
    allowed = {spec.name for spec in SERVICES if event_type in spec.emits}
    if event_type in PRINCIPALS.emits:
        allowed.add(PRINCIPALS.name)
    return frozenset(allowed)


def consumers_of(event_type: str) -> frozenset[str]:
    return frozenset(spec.name for spec in SERVICES if spec.consumes_every_type() or event_type in spec.consumes)
