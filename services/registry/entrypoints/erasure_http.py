"""Erasure routes of the registry API (GDPR Art. 17): request one, list, read its steps, fetch its certificate.
Same authentication and JSON errors as the other routes; who may do what is in domain/access.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query

from services.registry.adapters import erasure_repository
from services.registry.domain import access
from services.registry.domain.erasure import validate_erasure_id
from services.registry.domain.errors import Conflict, InvalidRequest, NotFound
from services.registry.domain.governance import Governance
from services.registry.domain.principals import Principal
from services.registry.erasure.service import request_erasure
from services.registry.erasure_schemas import ErasureRequest, ErasureView

if TYPE_CHECKING:
    from services.registry.entrypoints.http import RuntimeLike


def erasure_id_or_404(value: str) -> str:
    try:
        return validate_erasure_id(value)
    except InvalidRequest as exc:
        raise NotFound(f"{exc}; no such erasure") from None


def add_erasure_routes(
    app: FastAPI, runtime: RuntimeLike, governance: Governance, requires: Callable[[tuple[str, ...], str], Any]
) -> None:
    readers = access.READ_ERASURES

    @app.post("/erasures", response_model=ErasureView, status_code=201)
    async def erase(
        body: ErasureRequest, principal: Principal = requires(access.ERASE, "requesting an erasure")
    ) -> ErasureView:
        erasure = await request_erasure(runtime, governance, principal, subject_id=body.subject, reason=body.reason)
        return ErasureView.of(erasure)

    @app.get("/erasures", response_model=list[ErasureView])
    def erasures(
        limit: int = Query(default=200, ge=1, le=5000),
        _: Principal = requires(readers, "listing erasures"),
    ) -> list[ErasureView]:
        with runtime.db.transaction() as session:
            return [ErasureView.of(e) for e in erasure_repository.list_erasures(session, limit=limit)]

    @app.get("/erasures/{erasure_id}", response_model=ErasureView)
    def erasure(erasure_id: str, _: Principal = requires(readers, "reading an erasure")) -> ErasureView:
        with runtime.db.transaction() as session:
            return ErasureView.of(erasure_repository.require_erasure(session, erasure_id_or_404(erasure_id)))

    @app.get("/erasures/{erasure_id}/certificate")
    def erasure_certificate(erasure_id: str, _: Principal = requires(readers, "reading a certificate")) -> Any:
        with runtime.db.transaction() as session:
            found = erasure_repository.require_erasure(session, erasure_id_or_404(erasure_id))
        if found.certificate is None:
            raise Conflict(f"erasure {found.id} is {found.state}; its certificate is issued when every step is done")
        return found.certificate
