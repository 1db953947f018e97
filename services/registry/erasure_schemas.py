"""The erasure API's bodies (POST/GET /erasures...), built from the Erasure aggregate here, at the edge.
The subject's id comes in once (the request) and never goes out: views show its keyed hash only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.registry.domain.erasure import MAX_REASON_CHARS, MAX_SUBJECT_ID_CHARS, Erasure
from services.registry.schemas import _Model


class ErasureRequest(_Model):
    """Body of POST /erasures."""

    subject: str = Field(min_length=1, max_length=MAX_SUBJECT_ID_CHARS, description="The subject field's value.")
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class ErasureStepView(_Model):
    name: str
    status: str
    at: datetime
    detail: str
    event_id: str
    due: datetime | None = None


class ErasureView(_Model):
    id: str
    state: str
    subject_key: str
    reason: str
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    datasets: list[dict[str, Any]]
    versions: list[str]
    served: dict[str, str]
    replacements: dict[str, str]
    certificate_issued: bool
    steps: list[ErasureStepView]

    @classmethod
    def of(cls, erasure: Erasure) -> ErasureView:
        return cls(
            id=erasure.id, state=erasure.state, subject_key=erasure.subject_key, reason=erasure.reason,
            requested_by=erasure.requested_by, requested_at=erasure.requested_at, updated_at=erasure.updated_at,
            datasets=[h.as_dict() for h in erasure.datasets], versions=list(erasure.versions),
            served=dict(erasure.served), replacements=dict(erasure.replacements),
            certificate_issued=erasure.certificate is not None,
            steps=[ErasureStepView(name=s.name, status=s.status, at=s.at, detail=s.detail, event_id=s.event_id,
                                   due=s.due) for s in erasure.steps],
        )
