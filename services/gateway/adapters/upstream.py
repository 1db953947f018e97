"""Upstream routes: models behind an external OpenAI-compatible endpoint (a frontier model), called with
the key named in the route's `api_key_env`. The gateway applies the same policy, DLP, budgets and audit as
for local models; this adapter only speaks HTTP and turns the upstream's failures into specific errors.

Routes come from a YAML file (`TUNEGATE_GATEWAY_UPSTREAMS_FILE`):

    upstreams:
      - name: frontier            # the model name clients call
        base_url: https://api.example.com/v1
        model: gpt-4o-mini        # the upstream's own model name
        api_key_env: FRONTIER_API_KEY
        tenants: [demo-tenant]
        timeout_s: 30
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.domain.routes import UpstreamRoute
from shared.events.model_versions import TenantName
from shared.ids import MODEL_NAME_PATTERN
from shared.yaml_models import load_yaml_model

MAX_UPSTREAM_BODY = 8 * 1024 * 1024


class UpstreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2_000)
    model: str = Field(min_length=1, max_length=200)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    tenants: list[TenantName] = Field(min_length=1, max_length=100)
    timeout_s: float = Field(default=60.0, gt=0, le=3_600)


class UpstreamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upstreams: list[UpstreamSpec] = Field(default_factory=list, max_length=1_000)


class UpstreamConfigError(ValueError):
    pass


def load_upstreams(path: Path | None) -> list[UpstreamRoute]:
    if path is None:
        return []
    parsed = load_yaml_model(path, UpstreamsFile, "upstreams file", UpstreamConfigError)
    names = [spec.name for spec in parsed.upstreams]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UpstreamConfigError(f"upstreams file {path}: names must be unique; repeated: {', '.join(duplicates)}")
    return [
        UpstreamRoute(
            name=spec.name, base_url=spec.base_url.rstrip("/"), upstream_model=spec.model,
            api_key_env=spec.api_key_env, tenants=frozenset(spec.tenants), timeout_s=spec.timeout_s,
        )
        for spec in parsed.upstreams
    ]


@dataclass
class UpstreamFailure(Exception):
    """What went wrong upstream, in words a client can act on; `status` is the gateway's answer (502/504/429)."""

    status: int
    code: str
    message: str
    retry_after: str | None = None

    def __str__(self) -> str:
        return self.message


def _describe(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        detail = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        detail = None
    return (detail or response.reason_phrase or "no detail")[:500]


def _failure(route: UpstreamRoute, response: httpx.Response) -> UpstreamFailure:
    detail = _describe(response)
    if response.status_code == 429:
        return UpstreamFailure(429, "upstream_rate_limited", f"upstream {route.name} is rate limiting: {detail}",
                               response.headers.get("retry-after"))
    if response.status_code in (401, 403):
        return UpstreamFailure(502, "upstream_auth", f"upstream {route.name} refused the gateway's credentials "
                               f"({response.status_code}); check {route.api_key_env or 'its key'}")
    return UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered {response.status_code}: {detail}")


class UpstreamClient:
    """One pooled HTTP client for every upstream route."""

    def __init__(self, *, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(limits=httpx.Limits(max_connections=256), trust_env=False)

    def _headers(self, route: UpstreamRoute) -> dict[str, str]:
        if not route.api_key_env:
            return {}
        key = os.environ.get(route.api_key_env)
        if not key:
            raise UpstreamFailure(502, "upstream_key_missing",
                                  f"upstream {route.name}: environment variable {route.api_key_env} is not set")
        return {"authorization": f"Bearer {key}"}

    def _url(self, route: UpstreamRoute, operation: str) -> str:
        return f"{route.base_url}/{'chat/completions' if operation == 'chat' else 'completions'}"

    async def complete(self, route: UpstreamRoute, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = {**body, "model": route.upstream_model, "stream": False}
        try:
            response = await self._client.post(
                self._url(route, operation), json=payload, headers=self._headers(route), timeout=route.timeout_s
            )
        except httpx.TimeoutException:
            raise UpstreamFailure(504, "upstream_timeout",
                                  f"upstream {route.name} did not answer within {route.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(502, "upstream_unreachable",
                                  f"upstream {route.name} unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise _failure(route, response)
        if len(response.content) > MAX_UPSTREAM_BODY:
            raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered more than 8 MiB")
        try:
            return response.json()
        except ValueError:
            raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered with invalid JSON") from None

    async def stream(self, route: UpstreamRoute, operation: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's SSE chunks, parsed; the gateway re-emits the text through its own response DLP."""
        payload = {**body, "model": route.upstream_model, "stream": True,
                   "stream_options": {"include_usage": True}}
        try:
            async with self._client.stream(
                "POST", self._url(route, operation), json=payload, headers=self._headers(route),
                timeout=route.timeout_s,
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _failure(route, response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except ValueError:
                        raise UpstreamFailure(502, "upstream_error",
                                              f"upstream {route.name} sent a malformed stream chunk") from None
        except httpx.TimeoutException:
            raise UpstreamFailure(504, "upstream_timeout",
                                  f"upstream {route.name} stalled for more than {route.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(502, "upstream_unreachable",
                                  f"upstream {route.name} unreachable: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
