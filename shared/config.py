"""One settings object for every service and the CLI, read from the environment (prefix TUNEGATE_)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.json_input import parse_json
from shared.storage.private import private_dir, private_file

DEFAULT_MAX_DATASET_BYTES = 4 << 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_", extra="ignore")

    home: Path = Field(default=Path("./var"), description="Root for embedded state: redis, db, keys, logs.")
    redis_url: str | None = Field(default=None, description="External Redis; unset = tunegate starts its own.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; unset = SQLite under home/db.")

    # Delivery guarantees of the event bus.
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before an entry moves to <stream>.dlq.")
    reclaim_idle_ms: int = Field(default=30_000, ge=100, description="Pending this long = consumer presumed dead.")
    reclaim_interval_s: float = Field(default=2.0, gt=0)
    group_check_interval_s: float = Field(default=2.0, gt=0, description="How often lost groups are re-created.")
    outbox_retention_s: float = Field(
        default=3600.0, ge=0, description="Published outbox rows are deleted this long after publication."
    )
    read_batch: int = Field(default=256, ge=1)
    read_block_ms: int = Field(default=500, ge=1)

    # Audit ledger signing cadence.
    sth_max_entries: int = Field(default=1000, ge=1)
    sth_max_interval_s: float = Field(default=0.1, gt=0)

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT", description="OTLP/HTTP collector."
    )
    log_level: str = "INFO"

    # Registry HTTP API (approvals, job queries). Port 0 = pick a free port and write it to home/run/.
    registry_host: str = "127.0.0.1"
    registry_port: int = Field(default=0, ge=0, le=65535)
    registry_url: str | None = Field(default=None, description="Where the CLI finds the registry API.")
    registry_policy_path: Path | None = Field(
        default=None, description="YAML policy (licences, AI Act rules, advice) replacing the bundled one."
    )
    approval_ttl_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Seconds an approval request stays open before it expires."
    )

    keys_path: Path | None = Field(
        default=None,
        validation_alias="TUNEGATE_KEYS_DIR",
        description="Signing keys and trusted public keys (signing/, trust/); default home/keys.",
    )

    # Where datasets may be read from. A dataset named by path or file:// must lie under one of these
    # folders; content-addressed (cas://) datasets are read from the artefact store only.
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=f"Folders datasets may be read from: a JSON list or paths separated by '{os.pathsep}'.",
    )
    max_dataset_bytes: int = Field(
        default=DEFAULT_MAX_DATASET_BYTES, ge=1, description="Largest dataset file read (bytes)."
    )

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return parse_json(text)
            return [part for part in text.split(os.pathsep) if part.strip()]
        return value

    @field_validator("data_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        relative = [str(root) for root in roots if not root.expanduser().is_absolute()]
        if relative:
            raise ValueError(f"data roots must be absolute paths, got {', '.join(relative)}")
        return [root.expanduser() for root in roots]

    @property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def keys_dir(self) -> Path:
        return (self.keys_path or self.home_dir / "keys").resolve()

    def path(self, *parts: str) -> Path:
        """`home/part/...`, its folders created owner-only (0700, the home too). Parts are names below the
        home: an absolute part or a '..' would lead out of it and is refused."""
        for part in parts:
            pure = PurePath(part)
            if pure.is_absolute() or ".." in pure.parts or not pure.parts:
                raise ValueError(f"{part!r} cannot name a place under TUNEGATE_HOME (absolute, empty or '..')")
        home = private_dir(self.home_dir)
        target = home.joinpath(*parts)
        private_dir(target.parent, within=home)
        return target

    def database_url_for(self, service: str) -> str:
        """Each service owns its tables; embedded default is one SQLite file per service, created 0600 (SQLite
        gives its -wal and -shm files the database file's mode)."""
        if self.database_url:
            return self.database_url
        db_file = private_file(self.path("db", f"{service}.sqlite3"))
        return f"sqlite:///{db_file}"

    def resolved_registry_url(self) -> str:
        if self.registry_url:
            return self.registry_url.rstrip("/")
        url_file = self.home_dir / "run" / "registry.url"
        if url_file.exists():
            return url_file.read_text().strip().rstrip("/")
        raise RuntimeError(
            f"registry API not found: set TUNEGATE_REGISTRY_URL or run `tunegate up` (looked for {url_file})"
        )

    def resolved_redis_url(self, user: str | None = None) -> str:
        """External Redis when configured (its URL carries the credentials), else the one `tunegate up`
        started, as `user` (a service name, `operator` for the CLI, `admin`) when it has Redis users."""
        if self.redis_url:
            return self.redis_url
        url_file = self.home_dir / "redis" / "url"
        if url_file.exists():
            url = url_file.read_text().strip()
            if user is None:
                return url
            from shared.stack.redis_acl import RedisCredentials

            return RedisCredentials(self.home_dir / "redis").url_for(url, user)
        raise RuntimeError(f"no Redis configured: set TUNEGATE_REDIS_URL or run `tunegate up` (looked for {url_file})")
