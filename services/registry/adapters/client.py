"""HTTP client of the registry API, used by the CLI. Takes any httpx.Client so tests can hand it
FastAPI's TestClient. Every call but the bootstrap carries a bearer token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.registry.api_key_schemas import ApiKeyCreate, ApiKeyCredentials, ApiKeyRevoke, ApiKeyRotate, ApiKeyView
from services.registry.erasure_schemas import ErasureRequest, ErasureView
from services.registry.incident_schemas import IncidentClose, IncidentOpen, IncidentUpdate, IncidentView
from services.registry.model_schemas import (
    AliasView,
    DeploymentRequest,
    DeploymentResult,
    ModelApprovalRequest,
    ModelApprovalResult,
    ModelVersionSummary,
    ModelVersionView,
    RetirementRequest,
    RollbackRequest,
)
from services.registry.schemas import (
    AdminBootstrap,
    ApprovalRequest,
    ApprovalResult,
    CancelRequest,
    CancelResult,
    EvaluationRequestView,
    EvaluationRunRequest,
    EvaluationView,
    JobSummary,
    JobView,
    PrincipalCreate,
    PrincipalCredentials,
    PrincipalRevoke,
    PrincipalRotate,
    PrincipalView,
)
from shared.ids import UnsafeIdError, validate_job_id


def _segment(value: str) -> str:
    """One id as one path segment: percent-encoded, so a '/', '?' or '#' in it cannot reach another route
    (`jobs cancel '../principals/alice/revoke?'` once revoked a principal with an admin's token), and never
    '.' or '..', which URL normalisation would resolve. The registry validates ids too; this keeps a bad one
    from being a different, valid request."""
    if value in ("", ".", ".."):
        raise UnsafeIdError(f"{value!r} is not an id")
    return quote(value, safe="")


def _job(job_id: str) -> str:
    return _segment(validate_job_id(job_id))


class RegistryAPIError(RuntimeError):
    def __init__(self, status: int, error: str, detail: Any) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        super().__init__(f"registry API {status} {error}: {detail}")


class RegistryClient:
    def __init__(self, http: httpx.Client, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _check(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and "error" in body:
                raise RegistryAPIError(response.status_code, str(body["error"]), body.get("detail"))
            raise RegistryAPIError(response.status_code, "http_error", response.text[:500])
        return body

    def _get(self, path: str, **params: Any) -> Any:
        return self._check(self.http.get(path, params=params, headers=self._headers()))

    def _post(self, path: str, body: Any) -> Any:
        return self._check(self.http.post(path, json=body.model_dump(mode="json"), headers=self._headers()))

    # ------------------------------------------------------------ jobs

    def list_jobs(self, *, state: str | None = None) -> list[JobSummary]:
        params = {"state": state} if state else {}
        return [JobSummary.model_validate(item) for item in self._get("/jobs", **params)]

    def get_job(self, job_id: str) -> JobView:
        return JobView.model_validate(self._get(f"/jobs/{_job(job_id)}"))

    def decide(self, job_id: str, request: ApprovalRequest) -> ApprovalResult:
        return ApprovalResult.model_validate(self._post(f"/jobs/{_job(job_id)}/approvals", request))

    def cancel(self, job_id: str, request: CancelRequest) -> CancelResult:
        return CancelResult.model_validate(self._post(f"/jobs/{_job(job_id)}/cancel", request))

    def request_evaluation(self, job_id: str, request: EvaluationRunRequest) -> EvaluationRequestView:
        return EvaluationRequestView.model_validate(self._post(f"/jobs/{_job(job_id)}/evaluations", request))

    def list_evaluations(self, job_id: str) -> list[EvaluationView]:
        return [EvaluationView.model_validate(item) for item in self._get(f"/jobs/{_job(job_id)}/evaluations")]

    # ------------------------------------------------------------ model versions

    def list_models(self, *, state: str | None = None, model: str | None = None) -> list[ModelVersionSummary]:
        params = {k: v for k, v in (("state", state), ("model", model)) if v}
        return [ModelVersionSummary.model_validate(item) for item in self._get("/models", **params)]

    def get_model(self, version_id: str) -> ModelVersionView:
        return ModelVersionView.model_validate(self._get(f"/models/{_segment(version_id)}"))

    def get_aibom(self, version_id: str) -> dict[str, Any]:
        return dict(self._get(f"/models/{_segment(version_id)}/aibom"))

    def approve_model(self, version_id: str, request: ModelApprovalRequest) -> ModelApprovalResult:
        return ModelApprovalResult.model_validate(self._post(f"/models/{_segment(version_id)}/approvals", request))

    def deploy_model(self, version_id: str, request: DeploymentRequest) -> DeploymentResult:
        return DeploymentResult.model_validate(self._post(f"/models/{_segment(version_id)}/deployments", request))

    def retire_model(self, version_id: str, request: RetirementRequest) -> ModelVersionView:
        return ModelVersionView.model_validate(self._post(f"/models/{_segment(version_id)}/retirement", request))

    def list_aliases(self) -> list[AliasView]:
        return [AliasView.model_validate(item) for item in self._get("/aliases")]

    def rollback_alias(self, alias: str, request: RollbackRequest) -> DeploymentResult:
        return DeploymentResult.model_validate(self._post(f"/aliases/{_segment(alias)}/rollback", request))

    def get_evidence(self, version_id: str) -> dict[str, Any]:
        return dict(self._get(f"/models/{_segment(version_id)}/evidence"))

    # ------------------------------------------------------------ incidents (EU AI Act Art. 73)

    def list_incidents(self, *, status: str | None = None) -> list[IncidentView]:
        params = {"status": status} if status else {}
        return [IncidentView.model_validate(item) for item in self._get("/incidents", **params)]

    def get_incident(self, incident_id: str) -> IncidentView:
        return IncidentView.model_validate(self._get(f"/incidents/{_segment(incident_id)}"))

    def open_incident(self, request: IncidentOpen) -> IncidentView:
        return IncidentView.model_validate(self._post("/incidents", request))

    def update_incident(self, incident_id: str, request: IncidentUpdate) -> IncidentView:
        return IncidentView.model_validate(self._post(f"/incidents/{_segment(incident_id)}/updates", request))

    def close_incident(self, incident_id: str, request: IncidentClose) -> IncidentView:
        return IncidentView.model_validate(self._post(f"/incidents/{_segment(incident_id)}/close", request))

    # ------------------------------------------------------------ gateway API keys

    def list_api_keys(self, *, tenant: str | None = None) -> list[ApiKeyView]:
        params = {"tenant": tenant} if tenant else {}
        return [ApiKeyView.model_validate(item) for item in self._get("/keys", **params)]

    def create_api_key(self, request: ApiKeyCreate) -> ApiKeyCredentials:
        return ApiKeyCredentials.model_validate(self._post("/keys", request))

    def rotate_api_key(self, key_id: str) -> ApiKeyCredentials:
        return ApiKeyCredentials.model_validate(self._post(f"/keys/{_segment(key_id)}/rotate", ApiKeyRotate()))

    def revoke_api_key(self, key_id: str, request: ApiKeyRevoke) -> ApiKeyView:
        return ApiKeyView.model_validate(self._post(f"/keys/{_segment(key_id)}/revoke", request))

    # ------------------------------------------------------------ principals

    def list_principals(self) -> list[PrincipalView]:
        return [PrincipalView.model_validate(item) for item in self._get("/principals")]

    def create_principal(self, request: PrincipalCreate) -> PrincipalCredentials:
        return PrincipalCredentials.model_validate(self._post("/principals", request))

    def rotate_principal(self, name: str, request: PrincipalRotate) -> PrincipalCredentials:
        return PrincipalCredentials.model_validate(self._post(f"/principals/{_segment(name)}/rotate", request))

    def revoke_principal(self, name: str, request: PrincipalRevoke) -> PrincipalView:
        return PrincipalView.model_validate(self._post(f"/principals/{_segment(name)}/revoke", request))

    def bootstrap_admin(self, request: AdminBootstrap) -> PrincipalCredentials:
        return PrincipalCredentials.model_validate(self._post("/admin/bootstrap", request))

    # ------------------------------------------------------------ erasures (GDPR Art. 17)

    def request_erasure(self, request: ErasureRequest) -> ErasureView:
        return ErasureView.model_validate(self._post("/erasures", request))

    def list_erasures(self) -> list[ErasureView]:
        return [ErasureView.model_validate(e) for e in self._get("/erasures")]

    def get_erasure(self, erasure_id: str) -> ErasureView:
        return ErasureView.model_validate(self._get(f"/erasures/{_segment(erasure_id)}"))

    def get_erasure_certificate(self, erasure_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._get(f"/erasures/{_segment(erasure_id)}/certificate")
        return body
