"""HTTP client of the registry API, used by the CLI. Takes any httpx.Client so tests can hand it
FastAPI's TestClient."""

from __future__ import annotations

from typing import Any

import httpx

from services.registry.schemas import ApprovalRequest, ApprovalResult, JobSummary, JobView


class RegistryAPIError(RuntimeError):
    def __init__(self, status: int, error: str, detail: Any) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        super().__init__(f"registry API {status} {error}: {detail}")


class RegistryClient:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

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

    def list_jobs(self, *, state: str | None = None) -> list[JobSummary]:
        params = {"state": state} if state else {}
        return [JobSummary.model_validate(item) for item in self._check(self.http.get("/jobs", params=params))]

    def get_job(self, job_id: str) -> JobView:
        return JobView.model_validate(self._check(self.http.get(f"/jobs/{job_id}")))

    def decide(self, job_id: str, token: str, request: ApprovalRequest) -> ApprovalResult:
        response = self.http.post(
            f"/jobs/{job_id}/approvals",
            json=request.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {token}"},
        )
        return ApprovalResult.model_validate(self._check(response))
