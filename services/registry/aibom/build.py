"""build_aibom(facts) -> a CycloneDX 1.6 JSON BOM of one registered model version (docs/aibom.md).

Layout: metadata.component is the fine-tuned model (type machine-learning-model, with its modelCard, the
adapter's SHA-256 and tunegate:* properties); components are the base model (licence, hash, the registry's
licence decision) and one `data` component per dataset; dependencies link the model to both. The document is
a function of the facts alone (the serial number is a UUIDv5 of version id and artefact hash, the timestamp
the registration time), so rebuilding it gives the same bytes (canonical.py) and the same sha256."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC
from functools import cache
from typing import Any

from services.registry.aibom.facts import AIBOMFacts, DatasetFacts, VersionDependencyFacts
from services.registry.aibom.modelcard import base_model_card, model_card
from services.registry.aibom.schema import SPEC_VERSION, spdx_license_ids
from shared.canonical import canonical_json

PROPERTY_PREFIX = "tunegate:"
TOOL_NAME = "tunegate"
# A fixed namespace for AIBOM serial numbers, so the same version and artefact always get the same one.
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/tunegate/tunegate/aibom")


@cache
def tunegate_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunegate")
    except PackageNotFoundError:
        return "unknown"


def serial_number(facts: AIBOMFacts) -> str:
    return f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, f'{facts.version_id}:{facts.artifact_sha256}')}"


def _value(value: Any) -> str:
    """A property value: strings as they are, anything else as canonical JSON (numbers, booleans, lists)."""
    return value if isinstance(value, str) else canonical_json(value).decode("utf-8")


def _properties(pairs: list[tuple[str, Any]]) -> list[dict[str, str]]:
    """tunegate:-prefixed name/value pairs; a None value (not known) is left out rather than invented."""
    return [{"name": PROPERTY_PREFIX + name, "value": _value(value)} for name, value in pairs if value is not None]


def _sha256(digest: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": digest}]


def model_ref(facts: AIBOMFacts) -> str:
    return f"model:{facts.version_id}"


def base_ref(facts: AIBOMFacts) -> str:
    return f"base-model:{facts.base_model}"


def dataset_ref(index: int, dataset: DatasetFacts) -> str:
    # The index keeps refs unique when the same bytes play two roles or two datasets share a role.
    return f"dataset:{index}:{dataset.role}:{dataset.sha256[:16]}"


def licence_choice(licence: str | None, spdx_ids: Collection[str]) -> list[dict[str, Any]]:
    if licence is None:
        return [{"license": {"name": "not declared"}}]
    return [{"license": {"id": licence} if licence in spdx_ids else {"name": licence}}]


def _model_properties(facts: AIBOMFacts) -> list[dict[str, str]]:
    evaluation, plan = facts.evaluation, facts.decommissioning
    pairs: list[tuple[str, Any]] = [
        ("version_id", facts.version_id),
        ("job_id", facts.job_id),
        ("risk_tier", facts.risk_tier),
        ("requester", facts.requester),
        ("approvers", facts.job_approvers),
        ("method.kind", facts.method_kind),
        ("method.adapter", facts.adapter),
        ("method.differential_privacy", facts.differential_privacy),
        ("method.rlhf", facts.rlhf),
        ("seed", facts.seed),
        ("dp.epsilon", facts.epsilon),
        ("dp.delta", facts.delta),
        ("artifact.uri", facts.artifact_uri),
        ("artifact.size_bytes", facts.artifact_size_bytes),
        ("code_commit", facts.code_commit),
    ]
    # A hyperparameter set to null is a choice (e.g. no step limit): written as "null", not left out.
    pairs += [(f"hyperparameter.{key}", _value(facts.hyperparameters[key])) for key in sorted(facts.hyperparameters)]
    pairs += [(f"library.{name}", facts.library_versions[name]) for name in sorted(facts.library_versions)]
    pairs += [
        ("evaluation.id", evaluation.evaluation_id),
        ("evaluation.policy", evaluation.policy),
        ("evaluation.risk_tier", evaluation.risk_tier),
        ("evaluation.passed", evaluation.passed),
        ("evaluation.complete", evaluation.complete),
        ("evaluation.failures", [failure.model_dump(mode="json") for failure in evaluation.failures]),
        ("evaluation.report.uri", evaluation.report_uri),
        ("evaluation.report.sha256", evaluation.report_sha256),
        ("decommissioning.owner", plan.owner),
        ("decommissioning.retraining_trigger", plan.retraining_trigger),
        ("decommissioning.previous_version_retirement", plan.previous_version_retirement),
        ("decommissioning.audit_retention_days", plan.audit_retention_days),
        ("decommissioning.review_by", plan.review_by.isoformat()),
    ]
    return _properties(pairs)


def model_component(facts: AIBOMFacts, dataset_refs: list[str]) -> dict[str, Any]:
    return {
        "type": "machine-learning-model",
        "bom-ref": model_ref(facts),
        "name": facts.model_name,
        "version": str(facts.version),
        "description": f"{facts.method_kind.upper()} ({facts.adapter}) fine-tune of {facts.base_model}"
        f" for job {facts.job_id}",
        "hashes": _sha256(facts.artifact_sha256),
        "externalReferences": [
            {
                "type": "distribution",
                "url": facts.artifact_uri,
                "hashes": _sha256(facts.artifact_sha256),
                "comment": "the trained artefact (adapter or full weights) as the trainer stored it",
            },
            {
                "type": "quality-metrics",
                "url": facts.evaluation.report_uri,
                "hashes": _sha256(facts.evaluation.report_sha256),
                "comment": f"evaluation report of {facts.evaluation.evaluation_id} (fine-tuned vs base, gate verdict)",
            },
        ],
        "modelCard": model_card(facts, dataset_refs),
        "properties": _model_properties(facts),
    }


def base_component(facts: AIBOMFacts, spdx_ids: Collection[str]) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": base_ref(facts),
        "name": facts.base_model,
        "licenses": licence_choice(facts.base_licence, spdx_ids),
    }
    if facts.base_model_sha256:
        component["hashes"] = _sha256(facts.base_model_sha256)
    card = base_model_card(facts)
    if card:
        component["modelCard"] = card
    config = facts.base_architecture
    component["properties"] = _properties(
        [
            ("licence.decision", facts.licence_decision),
            ("licence.declared", facts.base_licence),
            ("base.model_type", config.get("model_type")),
        ]
    )
    return component


# The registered versions an rlhf policy depends on: (role, bom-ref prefix, description), in AIBOM order.
VERSION_DEPENDENCIES = (
    ("start_policy", "start-policy", "approved SFT version whose LoRA adapter the policy started from and whose "
                                     "outputs the KL bound was measured against"),
    ("reward_model", "reward-model", "approved reward-model version that scored the policy's samples during RLHF"),
)


def _version_dependencies(facts: AIBOMFacts) -> list[tuple[str, str, str, VersionDependencyFacts]]:
    found = ((role, prefix, text, getattr(facts, role)) for role, prefix, text in VERSION_DEPENDENCIES)
    return [(role, f"{prefix}:{dep.version_id}", text, dep) for role, prefix, text, dep in found if dep is not None]


def version_dependency_refs(facts: AIBOMFacts) -> list[str]:
    return [ref for _, ref, _, _ in _version_dependencies(facts)]


def version_dependency_components(facts: AIBOMFacts) -> list[dict[str, Any]]:
    """The versions an rlhf policy depends on (its starting SFT version, its reward model), pinned by artefact
    and AIBOM digests."""
    return [{
        "type": "machine-learning-model",
        "bom-ref": ref,
        "name": dep.version_id,
        "description": text,
        "hashes": _sha256(dep.artifact_sha256),
        "properties": _properties([("role", role), ("aibom.sha256", dep.aibom_sha256)]),
    } for role, ref, text, dep in _version_dependencies(facts)]


def _sensitive(dataset: DatasetFacts) -> list[str]:
    totals = dataset.entity_totals
    return [
        f"{entity}: " + ", ".join(f"{action} {count}" for action, count in sorted(totals[entity].items()))
        for entity in sorted(totals)
    ]


def dataset_component(ref: str, dataset: DatasetFacts, facts: AIBOMFacts) -> dict[str, Any]:
    name = f"{facts.job_id} {dataset.role.replace('_', '-')} data"
    data: dict[str, Any] = {
        "type": "dataset",
        "name": name,
        "contents": {"url": dataset.uri},
        "classification": dataset.classification,
        # The requester brought the data with the job; the approvers agreed to its use for this purpose.
        "governance": {
            "owners": [{"contact": {"name": facts.requester}}],
            **({"stewards": [{"contact": {"name": a}} for a in facts.job_approvers]} if facts.job_approvers else {}),
        },
    }
    sensitive = _sensitive(dataset)
    if sensitive:
        data["sensitiveData"] = sensitive
    properties = _properties(
        [
            ("dataset.role", dataset.role),
            ("dataset.fingerprint", dataset.fingerprint),
            ("dataset.record_count", dataset.record_count),
            ("dataset.classification", dataset.classification),
            ("dataset.legal_basis", dataset.legal_basis),
            ("scan.verdict", dataset.scan_verdict),
            ("scan.entity_totals", dataset.entity_totals),
            ("scan.report.sha256", dataset.scan_report_sha256),
            ("scan.ner", "unknown" if dataset.ner is None else dataset.ner),
            ("scan.ner.model", dataset.ner_model),
            ("scan.ner.model_version", dataset.ner_model_version),
        ]
    )
    return {
        "type": "data",
        "bom-ref": ref,
        "name": name,
        "hashes": _sha256(dataset.sha256),
        "data": [data],
        "properties": properties,
    }


def build_aibom(
    facts: AIBOMFacts, *, tool_version: str | None = None, spdx_ids: Collection[str] | None = None
) -> dict[str, Any]:
    """The AIBOM of one model version as a JSON-ready dict (serialise it with canonical.aibom_bytes).

    tool_version defaults to the installed tunegate's; spdx_ids (which licences go in as SPDX `id` rather
    than `name`) to the list CycloneDX 1.6 accepts."""
    ids = spdx_license_ids() if spdx_ids is None else spdx_ids
    refs = [dataset_ref(index, dataset) for index, dataset in enumerate(facts.datasets)]
    version_refs = version_dependency_refs(facts)
    model = model_component(facts, refs)
    timestamp = facts.registered_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(facts),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [
                    {"type": "application", "name": TOOL_NAME, "version": tool_version or tunegate_version()}
                ]
            },
            "component": model,
        },
        "components": [
            base_component(facts, ids),
            *version_dependency_components(facts),
            *(dataset_component(ref, dataset, facts) for ref, dataset in zip(refs, facts.datasets, strict=True)),
        ],
        "dependencies": [
            {"ref": model_ref(facts), "dependsOn": [base_ref(facts), *version_refs, *refs]},
            {"ref": base_ref(facts), "dependsOn": []},
            *({"ref": ref, "dependsOn": []} for ref in version_refs),
            *({"ref": ref, "dependsOn": []} for ref in refs),
        ],
    }
