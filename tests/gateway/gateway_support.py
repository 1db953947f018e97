"""A real gateway process for tests: the tiny base shared from the session, LoRA adapters that answer
differently stored as the trainer stores artefacts, and the registry's events (API key, deployments)
published signed in the registry's name, exactly as the registry would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.support.random_adapter import make_random_adapter
from services.registry.domain.api_keys import hash_secret, new_key_id, new_secret
from services.trainer.engine.packaging import store_directory
from shared.events.envelope import Envelope
from shared.events.inference import ApiKeyCreated, ApiKeyLimits, ApiKeyRevoked
from shared.events.model_versions import ModelDeployed, ModelRetired
from shared.models.bases import BaseModelInfo
from shared.storage.artifacts import ArtifactStore
from tests.support import ServiceProcess, publish_signed, wait_for
from tests.trainer.test_trainer_service import share_built_tiny

TENANT = "acme"


def make_adapter(base: BaseModelInfo, target: Path, seed: int) -> Path:
    """A LoRA that answers differently from the base and from one made with another seed."""
    return make_random_adapter(base.path, target, seed)


def event(event_type: str, payload: Any, subject: str, actor: str = "admin") -> Envelope:
    return Envelope(type=event_type, producer="registry", actor=actor, subject=subject,
                    payload=payload.model_dump(mode="json"))


@dataclass
class GatewayHarness:
    home: Path
    redis_url: str
    process: ServiceProcess | None = None
    url: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    """key name -> secret"""
    env: dict[str, str] = field(default_factory=dict)
    """for every start: a module-scoped harness's database (tests.support.service_database_env)"""

    def start(self, extra_env: dict[str, str] | None = None, timeout_s: float = 90.0) -> str:
        url_file = self.home / "run" / "gateway.url"
        url_file.unlink(missing_ok=True)
        self.process = ServiceProcess("services.gateway", self.home, self.redis_url,
                                      extra_env={**self.env, **(extra_env or {})})
        self.process.wait_ready(timeout_s)
        wait_for(lambda: url_file.exists() or self.process.process.poll() is not None, timeout_s, "gateway URL")
        if not url_file.exists():
            raise AssertionError(f"gateway exited:\n{self.process.log()[-4000:]}")
        self.url = url_file.read_text().strip()
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def client(self, key_name: str) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[key_name], max_retries=0, timeout=120)

    def post(self, key_name: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.post_raw(key_name, path, json.dumps(body).encode())

    def post_raw(self, key_name: str, path: str, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", content=body, timeout=120, headers={
            "authorization": f"Bearer {self.keys[key_name]}", "content-type": "application/json"})

    def publish(self, *envelopes: Envelope) -> None:
        publish_signed(self.redis_url, *envelopes, home=self.home)

    def create_key(self, name: str, models: list[str], *, tenant: str = TENANT, rpm: int = 1_000,
                   tokens_per_day: int = 10_000_000) -> tuple[str, str]:
        key_id = new_key_id()
        secret = new_secret(key_id)
        payload = ApiKeyCreated(key_id=key_id, name=name, tenant=tenant, models=models,
                                limits=ApiKeyLimits(requests_per_minute=rpm, tokens_per_day=tokens_per_day),
                                key_sha256=hash_secret(secret), created_by="admin")
        self.publish(event("apikey.created", payload, key_id))
        self.keys[name] = secret
        return key_id, secret

    def revoke_key(self, key_id: str) -> None:
        self.publish(event("apikey.revoked", ApiKeyRevoked(key_id=key_id, reason="test", revoked_by="admin"), key_id))

    def deploy(self, version_id: str, alias: str, adapter_dir: Path, *, tenants: tuple[str, ...] = (TENANT,),
               watermark: bool = False) -> None:
        artifact = store_directory(ArtifactStore(self.home / "artifacts"), adapter_dir)
        payload = ModelDeployed(version_id=version_id, alias=alias, tenants=list(tenants), base_model="tiny",
                                adapter="lora", artifact=artifact, watermark=watermark)
        self.publish(event("model.deployed", payload, version_id, actor="dora"))

    def retire(self, version_id: str, alias: str | None) -> None:
        payload = ModelRetired(version_id=version_id, reason="test retirement", alias=alias)
        self.publish(event("model.retired", payload, version_id, actor="dora"))


def prepared_home(home: Path, tiny_base: BaseModelInfo) -> Path:
    share_built_tiny(home, tiny_base)
    return home


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out
