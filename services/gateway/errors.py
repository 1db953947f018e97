"""Every refusal the gateway answers, in OpenAI's error shape. `stage` and `check` say what refused the
request in the audit record (inference.blocked); the message is what the client reads and never repeats
personal data from the prompt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GatewayError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    stage: str = "access"
    check: str = "request"
    retry_after: int | None = None
    findings: dict[str, int] | None = None
    audited: bool = True
    """False for requests refused before they name a model (bad JSON, oversized body): nothing to audit."""
    headers: dict[str, str] | None = None
    """Sent with the refusal: the request id, trace id and audit event a client can quote (inference.py)."""

    def __str__(self) -> str:
        return self.message


def unauthorised(message: str) -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code="invalid_api_key", check="api_key")


def model_not_found(name: str) -> GatewayError:
    return GatewayError(
        404, f"The model '{name}' does not exist or you do not have access to it.",
        code="model_not_found", param="model", check="route",
    )
