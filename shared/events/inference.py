"""Wire types of the inference gateway: API keys (issued by the registry, on tunegate.jobs next to the
principals) and the audit record of every gateway request (tunegate.inference).

Nothing here carries text a client sent or received: prompts and completions travel as SHA-256 hashes and
DLP findings as counts per entity type. A policy may ask to retain prompts (`retained_prompt`), and then
only the redacted prompt is kept."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.events.model_versions import MAX_TENANTS, TenantName
from shared.events.payloads import SHA256_PATTERN, Payload

API_KEY_ID_PATTERN = r"^key_[a-z0-9]{16}$"
ApiKeyId = Annotated[str, Field(pattern=API_KEY_ID_PATTERN)]
# A model a key may call: an alias, a version id, an upstream route name, or "*" for every model deployed to
# the key's tenant.
ModelScope = Annotated[str, Field(pattern=r"^(\*|[a-z0-9](?:[a-z0-9.-]{0,70}[a-z0-9])?)$")]
MAX_MODEL_SCOPES = 100
RequestId = Annotated[str, Field(pattern=r"^req_[0-9a-f]{32}$")]
EntityCounts = Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[int, Field(ge=0)]], Field(max_length=64)]


class ApiKeyLimits(Payload):
    requests_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    tokens_per_day: int = Field(default=1_000_000, ge=1, le=10_000_000_000,
                                description="Prompt plus completion tokens in a rolling UTC day.")


class ApiKeyCreated(Payload):
    """A gateway API key. Carries the SHA-256 of the secret (never the secret), its tenant and the models it
    may call."""

    key_id: ApiKeyId
    name: str = Field(min_length=1, max_length=200, description="What the key is for (a person or system).")
    tenant: TenantName
    models: list[ModelScope] = Field(min_length=1, max_length=MAX_MODEL_SCOPES)
    limits: ApiKeyLimits
    key_sha256: str = Field(pattern=SHA256_PATTERN)
    created_by: str = Field(min_length=1, max_length=200)


class ApiKeyRotated(Payload):
    """A new secret for a key; the old one stops working at once."""

    key_id: ApiKeyId
    key_sha256: str = Field(pattern=SHA256_PATTERN)
    rotated_by: str = Field(min_length=1, max_length=200)


class ApiKeyRevoked(Payload):
    key_id: ApiKeyId
    reason: str = Field(min_length=1, max_length=4_000)
    revoked_by: str = Field(min_length=1, max_length=200)


class InferenceCompleted(Payload):
    """One answered gateway request. `model_version` is the version id for a locally served model, the
    route name for an upstream one; the provenance signature a client holds covers this event's id."""

    request_id: RequestId
    key_id: ApiKeyId
    tenant: TenantName
    model: str = Field(min_length=1, max_length=200, description="The model name the client asked for.")
    model_version: str = Field(min_length=1, max_length=200)
    route: Literal["local", "upstream"]
    operation: Literal["chat", "text_completion"]
    streamed: bool
    prompt_sha256: str = Field(pattern=SHA256_PATTERN)
    response_sha256: str = Field(pattern=SHA256_PATTERN)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    overhead_ms: float = Field(ge=0)
    policy: str = Field(min_length=1, max_length=200)
    decision: Literal["allowed", "redacted"]
    prompt_findings: EntityCounts = Field(default_factory=dict)
    response_findings: EntityCounts = Field(default_factory=dict)
    watermark: bool
    finish_reason: str = Field(default="stop", max_length=40)
    retained_prompt: str | None = Field(default=None, max_length=200_000,
                                        description="The redacted prompt, only when the policy retains prompts.")


class InferenceBlocked(Payload):
    """A refused gateway request: by policy, DLP, budget or an upstream failure. `check` names what refused
    it; findings are counts per entity type, never text."""

    request_id: RequestId
    key_id: ApiKeyId | None = None
    tenant: TenantName | None = None
    model: str = Field(min_length=1, max_length=200)
    model_version: str | None = Field(default=None, max_length=200)
    stage: Literal["access", "prompt", "model", "response"]
    check: str = Field(min_length=1, max_length=80)
    policy: str | None = Field(default=None, max_length=200)
    reason: str = Field(min_length=1, max_length=4_000)
    prompt_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    findings: EntityCounts = Field(default_factory=dict)
    status_code: int = Field(ge=400, le=599)


__all__ = [
    "MAX_TENANTS",
    "ApiKeyCreated",
    "ApiKeyLimits",
    "ApiKeyRevoked",
    "ApiKeyRotated",
    "InferenceBlocked",
    "InferenceCompleted",
]
