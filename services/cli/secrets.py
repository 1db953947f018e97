"""`tunegate secrets`: every secret a compose or Kubernetes deployment needs, generated on the operator's machine.

`generate DIR` writes (directories 0700, files 0600, nothing printed but paths):

    DIR/.env                        compose: per-service Redis URLs, the PostgreSQL password, TUNEGATE_SECRETS_DIR
    DIR/redis/users.acl             the Redis ACL file (shared.stack.redis_acl): one user per service, default off
    DIR/redis/credentials/<user>    each Redis user's password (`admin` is for the operator's emergencies only)
    DIR/keys/signing/<service>.key  each service's Ed25519 event-signing key (shared.security.signing.KeyDirectory)
    DIR/keys/trust/<service>/*.pub  every service's public keys, which every service verifies events with
    DIR/kustomization.yaml          Kubernetes: the Secrets and ConfigMaps that infra/k8s refers to, by name

compose.yaml and infra/k8s name these files and objects; tests/infra generates a directory and checks both
against it. Heavy imports stay inside the functions: the CLI imports this module on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from shared.stack.redis_acl import RedisCredentials

secrets_app = typer.Typer(
    help="Secrets for a compose or Kubernetes deployment: Redis users, passwords, service signing keys.",
    no_args_is_help=True,
)

# The in-cluster and in-compose address of Redis: the Service / compose service named "redis".
REDIS_ADDRESS = "redis:6379/0"
NAMESPACE = "tunegate"
DATABASE_ENV_FILE = "database.env"
"""Kubernetes only: the operator writes `TUNEGATE_DATABASE_URL=...` (the managed PostgreSQL) into it."""


@dataclass(frozen=True)
class SecretsLayout:
    """Where each generated secret lives under DIR, and the Kubernetes objects made from them."""

    root: Path

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def acl_file(self) -> Path:
        return self.redis_dir / "users.acl"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def kustomization(self) -> Path:
        return self.root / "kustomization.yaml"

    def outputs(self) -> tuple[Path, ...]:
        return (self.env_file, self.redis_dir, self.keys_dir, self.kustomization)


def redis_url_variable(service: str) -> str:
    """The compose variable holding a service's Redis URL, e.g. TUNEGATE_REDIS_URL_SCANNER."""
    return f"TUNEGATE_REDIS_URL_{service.upper()}"


POSTGRES_PASSWORD_VARIABLE = "TUNEGATE_POSTGRES_PASSWORD"
REDIS_PROBE_PASSWORD_VARIABLE = "TUNEGATE_REDIS_OPERATOR_PASSWORD"
SECRETS_DIR_VARIABLE = "TUNEGATE_SECRETS_DIR"


def service_secret_name(service: str) -> str:
    """Kubernetes Secret with one service's Redis URL (`redis-url`) and signing key (`signing-key`)."""
    return f"tunegate-{service}"


def trust_config_map_name(service: str) -> str:
    """Kubernetes ConfigMap with one service's public keys (`<key id>.pub`), mounted by every service."""
    return f"tunegate-trust-{service}"


REDIS_ACL_SECRET = "redis-acl"
DATABASE_SECRET = "tunegate-database"


_UNSAFE_IN_COMPOSE = set(":$#'\"\\\n")
"""Characters of DIR that break `${TUNEGATE_SECRETS_DIR}:/secrets:ro` or the .env line holding it."""


class SecretsExistError(Exception):
    """DIR already holds generated secrets and --force was not given."""


def generate_secrets(root: Path, *, force: bool = False) -> SecretsLayout:
    """Generate every secret under `root`; refuse to replace existing ones unless `force`."""
    import secrets
    import shutil

    from shared.roster import service_names
    from shared.security.keys import write_secret
    from shared.security.signing import KeyDirectory
    from shared.stack.redis_acl import OPERATOR, RedisCredentials

    layout = SecretsLayout(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a directory")
    unusable = sorted(set(str(root.resolve())) & _UNSAFE_IN_COMPOSE)
    if unusable:
        raise ValueError(
            f"{root.resolve()} contains {' '.join(repr(char) for char in unusable)}: compose reads the path from "
            "the .env file and mounts it as SOURCE:TARGET, where these characters change its meaning; "
            "choose another directory"
        )
    present = [path for path in layout.outputs() if path.exists() or path.is_symlink()]
    if present and not force:
        names = ", ".join(str(path.relative_to(root)) for path in present)
        raise SecretsExistError(
            f"{root} already holds secrets ({names}); pass --force to replace them all "
            "(every password and signing key changes, so every service must be redeployed)"
        )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    for path in present:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    credentials = RedisCredentials(layout.redis_dir)
    credentials.ensure()
    keys = KeyDirectory(layout.keys_dir)
    for name in service_names():
        keys.signer(name)

    postgres_password = secrets.token_urlsafe(32)
    lines = [
        "# Generated by `tunegate secrets generate`: compose.yaml reads these (docker compose --env-file).",
        "# Secrets: keep this file 0600 and out of version control.",
        f"{SECRETS_DIR_VARIABLE}={root.resolve()}",
        f"{POSTGRES_PASSWORD_VARIABLE}={postgres_password}",
        f"{REDIS_PROBE_PASSWORD_VARIABLE}={_password(credentials, OPERATOR)}",
    ]
    for name in service_names():
        lines.append(f"{redis_url_variable(name)}={credentials.url_for(f'redis://{REDIS_ADDRESS}', name)}")
    write_secret(layout.env_file, ("\n".join(lines) + "\n").encode("ascii"))
    write_kustomization(layout)
    _restrict(root)
    return layout


def _password(credentials: RedisCredentials, user: str) -> str:
    password = credentials.password(user)
    if password is None:
        raise RuntimeError(f"Redis user {user!r} has no generated password")
    return password


def write_kustomization(layout: SecretsLayout) -> Path:
    """DIR/kustomization.yaml from the secrets on disk (rerun after `tunegate signing-keys rotate` so the trust
    ConfigMaps list the new public keys)."""
    import yaml

    from shared.roster import service_names
    from shared.security.keys import write_secret
    from shared.stack.redis_acl import OPERATOR, RedisCredentials

    credentials = RedisCredentials(layout.redis_dir)

    def relative(path: Path) -> str:
        return str(path.relative_to(layout.root))

    secret_generator: list[dict[str, object]] = [
        {
            "name": REDIS_ACL_SECRET,
            "files": [
                f"users.acl={relative(layout.acl_file)}",
                f"operator-password={relative(credentials.directory / OPERATOR)}",
            ],
        },
        {"name": DATABASE_SECRET, "envs": [DATABASE_ENV_FILE]},
    ]
    config_map_generator: list[dict[str, object]] = []
    for name in service_names():
        signing_key = layout.keys_dir / "signing" / f"{name}.key"
        if not signing_key.is_file():
            raise FileNotFoundError(f"signing key of {name} missing: {signing_key}")
        secret_generator.append(
            {
                "name": service_secret_name(name),
                "literals": [f"redis-url={credentials.url_for(f'redis://{REDIS_ADDRESS}', name)}"],
                "files": [f"signing-key={relative(signing_key)}"],
            }
        )
        public_keys = sorted((layout.keys_dir / "trust" / name).glob("*.pub"))
        if not public_keys:
            raise FileNotFoundError(f"no public key of {name} under {layout.keys_dir / 'trust' / name}")
        config_map_generator.append(
            {"name": trust_config_map_name(name), "files": [relative(path) for path in public_keys]}
        )
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        # infra/k8s refers to these objects by their plain names.
        "generatorOptions": {
            "disableNameSuffixHash": True,
            "labels": {"app.kubernetes.io/name": "tunegate", "app.kubernetes.io/part-of": "tunegate"},
        },
        "secretGenerator": secret_generator,
        "configMapGenerator": config_map_generator,
    }
    header = (
        "# Generated by `tunegate secrets generate`: the Secrets and ConfigMaps infra/k8s refers to.\n"
        f"# Write {DATABASE_ENV_FILE} here first (one line: TUNEGATE_DATABASE_URL=postgresql://...), then\n"
        "#   kubectl apply -f infra/k8s/namespace.yaml && kubectl apply -k THIS_DIR && kubectl apply -k infra/k8s\n"
        "# Holds every service's Redis password: keep it 0600 and out of version control.\n"
    )
    write_secret(layout.kustomization, (header + yaml.safe_dump(document, sort_keys=False)).encode("ascii"))
    return layout.kustomization


def _restrict(root: Path) -> None:
    """Directories 0700, files 0600: public keys included, so one rule holds for the whole tree."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


@secrets_app.command("generate")
def generate(
    directory: Path = typer.Argument(..., help="Where to write the secrets (created 0700)."),
    force: bool = typer.Option(False, "--force", help="Replace secrets already in DIRECTORY (all of them)."),
) -> None:
    """Generate Redis users and passwords, the PostgreSQL password and every service's signing key into
    DIRECTORY, for `docker compose --env-file DIRECTORY/.env` and `kubectl apply -k DIRECTORY`."""
    try:
        layout = generate_secrets(directory, force=force)
    except SecretsExistError as exc:
        typer.echo(f"tunegate secrets generate: {exc}", err=True)
        raise typer.Exit(1) from None
    except (NotADirectoryError, PermissionError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"tunegate secrets generate: cannot write {directory}: {exc}", err=True)
        raise typer.Exit(1) from None
    root = layout.root
    typer.echo(f"wrote secrets under {root} (directories 0700, files 0600; no secret is printed):")
    for path in layout.outputs():
        typer.echo(f"  {path}")
    typer.echo(f"compose:     docker compose --env-file {layout.env_file} up -d --build")
    typer.echo(f"kubernetes:  write {root / DATABASE_ENV_FILE} (TUNEGATE_DATABASE_URL=postgresql://...), then")
    typer.echo(f"             kubectl apply -f infra/k8s/namespace.yaml && kubectl apply -k {root}")
    typer.echo("             kubectl apply -k infra/k8s")


@secrets_app.command("kustomization")
def kustomization(
    directory: Path = typer.Argument(..., help="A directory made by `tunegate secrets generate`."),
) -> None:
    """Rewrite DIRECTORY/kustomization.yaml from the keys on disk, e.g. after
    `TUNEGATE_KEYS_DIR=DIRECTORY/keys tunegate signing-keys rotate SERVICE`, so the trust ConfigMaps carry the
    new key."""
    layout = SecretsLayout(directory)
    try:
        path = write_kustomization(layout)
    except FileNotFoundError as exc:
        typer.echo(f"tunegate secrets kustomization: {exc} (run `tunegate secrets generate {directory}`)", err=True)
        raise typer.Exit(1) from None
    _restrict(directory)
    typer.echo(f"wrote {path}; apply with: kubectl apply -k {directory}")
