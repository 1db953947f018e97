"""One settings object for every service and the CLI, read from the environment (prefix TUNEGATE_)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.json_input import parse_json
from shared.storage.private import private_dir, private_file

DEFAULT_MAX_DATASET_BYTES = 4 << 30

# The schemes redis-py's from_url accepts (it compares them case-sensitively, so do we).
REDIS_SCHEMES = ("redis", "rediss", "unix")
HTTP_SCHEMES = ("http", "https")
# Kernel pseudo-filesystems: nothing tunegate writes can live there (chmod fails, files are not files).
# /dev/shm is an ordinary tmpfs under /dev, a fair place for a throwaway home, so it is let through.
KERNEL_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
KERNEL_TREE_EXCEPTIONS = (Path("/dev/shm"),)


def _hide_credentials(url: str) -> str:
    """`url` with anything before an '@' in it masked: an error message (or a log of it) must not show a
    password. Masks too much rather than too little when the URL is malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def check_redis_url(url: str) -> str:
    """A URL redis-py connects with: redis:// or rediss:// with a host, a port 1-65535 and a numeric database,
    or unix:// with a socket path. Checked with urllib alone (redis is too slow to import for every verb);
    the message never shows the password."""
    shown = _hide_credentials(url)
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"{shown!r} is not a Redis URL: use redis://[user:password@]host[:port][/db], rediss://... (TLS) or "
            "unix:///path/to/redis.sock"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's own message can quote what it took for the port: part of a password with a bare '#' or '/'.
        raise ValueError(
            f"{shown!r} does not parse as a URL (malformed host or port); percent-encode '#', '/', '?' and '@' in a "
            "password"
        ) from None
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"{shown!r} names no socket: use unix:///path/to/redis.sock")
        return url
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host: use {scheme}://host[:port][/db]")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0 cannot be connected to; give the port Redis listens on (1-65535)")
    # redis-py takes the path as the database number (unless ?db= gives it) and silently ignores one that is
    # not a number, which would put every stream in database 0.
    database = unquote(parts.path).replace("/", "")
    if database and "db" not in parse_qs(parts.query) and not database.isdigit():
        raise ValueError(f"{shown!r}: the path must be a database number (/0, /1, ...), not {database!r}")
    return url


def check_http_url(url: str) -> str:
    """http(s)://host[:port][/path] with a port 1-65535: a base URL the CLI appends API paths to, so no query,
    fragment or user:password (the registry takes a bearer token, not basic auth)."""
    shown = _hide_credentials(url)
    expected = "expected http(s)://host[:port][/path]"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number or out of 0-65535
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({exc}); {expected}") from None
    if parts.scheme not in HTTP_SCHEMES:
        raise ValueError(f"{shown!r} is not an http:// or https:// URL; {expected}")
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host; {expected}")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0 cannot be connected to; {expected} with a port 1-65535")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{shown!r} carries a user:password; {expected} (the registry takes a token: --token or TUNEGATE_TOKEN)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{shown!r} has a query or fragment, which API paths cannot be appended to; {expected}")
    return url


def check_folder(path: Path, *, kernel_trees: bool = True) -> Path:
    """A folder tunegate may create and use: neither it nor the nearest of its parents that exists is a file
    (creating it would fail with NotADirectoryError), and, when `kernel_trees`, it does not resolve into
    /proc, /sys or /dev (which refuse the folders and owner-only modes it makes). Checked as the services
    use it: resolved from the working folder, symbolic links followed."""
    try:
        resolved = path.resolve()
        if kernel_trees:
            for tree in KERNEL_TREES:
                inside = resolved == tree or tree in resolved.parents
                if inside and not any(resolved == ok or ok in resolved.parents for ok in KERNEL_TREE_EXCEPTIONS):
                    shown = str(path) if resolved == path else f"{path} (which resolves to {resolved})"
                    raise ValueError(f"{shown} lies under {tree}, a kernel filesystem; choose a folder on a disk")
        existing = resolved
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            where = "" if existing == resolved else f" (for {path})"
            raise ValueError(f"{existing} is a file, not a folder{where}; choose a folder, or a path to create")
    except OSError as exc:  # e.g. a parent this user may not enter: the services could not use it either
        raise ValueError(f"{path} cannot be checked: {exc.strerror or exc}") from None
    return path


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a URL holding a password; a service that logs the error
    # must not log it.
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_", extra="ignore", hide_input_in_errors=True)

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

    @field_validator("data_roots")
    @classmethod
    def _roots_are_folders(cls, roots: list[Path]) -> list[Path]:
        # Only read from: a root in /dev/shm or even /proc is the operator's business, a file is a mistake.
        return [check_folder(root, kernel_trees=False) for root in roots]

    # Each check runs on a value given (environment, .env or constructor), not on the defaults. An empty URL
    # has always meant "unset" (TUNEGATE_REDIS_URL= runs the embedded Redis; compose's ${VAR:-} gives one).
    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        return None if url is None or not url.strip() else check_redis_url(url)

    @field_validator("registry_url")
    @classmethod
    def _registry_url(cls, url: str | None) -> str | None:
        return None if url is None or not url.strip() else check_http_url(url)

    @field_validator("home", "keys_path")
    @classmethod
    def _writable_folder(cls, path: Path | None) -> Path | None:
        return None if path is None else check_folder(path)

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
