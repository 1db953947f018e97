"""Deployment manifests: compose.yaml, Dockerfile, infra/k8s, infra/otel and infra/redis.

Tools that may be absent (docker-compose, redis-server) only gate the tests that run them; the structural
checks parse the files with PyYAML and always run, and the Kubernetes manifests are validated offline
against the JSON schemas bundled in `kubernetes-validate` (a dev dependency)."""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from services.cli.secrets import (
    DATABASE_ENV_FILE,
    DATABASE_SECRET,
    POSTGRES_PASSWORD_VARIABLE,
    REDIS_ACL_SECRET,
    REDIS_PROBE_PASSWORD_VARIABLE,
    SECRETS_DIR_VARIABLE,
    SecretsLayout,
    redis_url_variable,
    service_secret_name,
    trust_config_map_name,
)
from shared.evaluation.canaries import CANARY_KEY_FILE
from shared.roster import SERVICES, service_names
from shared.stack.redis_acl import OPERATOR, RedisCredentials
from tests.infra.conftest import read_env_file

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S_DIR = REPO / "infra" / "k8s"
COLLECTOR_FILE = REPO / "infra" / "otel" / "collector.yaml"
REDIS_CONF = REPO / "infra" / "redis" / "redis.conf"

# The roster is the one list of services: a service added there fails these tests until its manifests exist.
TUNEGATE_SERVICES = service_names()
HTTP_SERVICES = tuple(spec.name for spec in SERVICES if spec.http)
WORKER_SERVICES = tuple(name for name in TUNEGATE_SERVICES if name not in HTTP_SERVICES)
INFRA_SERVICES = ("install-secrets", "redis", "postgres", "otel-collector", "jaeger")
OPERATOR_TOOLS = ("cli",)
TUNEGATE_HOME = "/var/lib/tunegate"
NAMESPACE = "tunegate"
OLDEST_SUPPORTED_K8S = "1.29.0"
GPU = "nvidia.com/gpu"
PROBE_SCRIPT = "/usr/local/lib/tunegate/healthcheck.py"
# The canary key (shared/evaluation/canaries.py) is created on first use by whichever of these needs it
# first: the scanner plants canaries with it, the evaluator derives the same values to measure them.
CANARY_KEY_PATH = f"{TUNEGATE_HOME}/keys/{CANARY_KEY_FILE}"
CANARY_KEY_USERS = ("scanner", "evaluator")


# ------------------------------------------------------------------------------------------ helpers


class MissingVariable(KeyError):
    """A ${VAR:?message} or ${VAR?message} whose variable is unset: compose refuses to start."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$, applied to
    every string."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, separator, default = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if separator == ":-" and not current:
            return default or ""
        if separator == "-" and current is None:
            return default or ""
        if (separator == ":?" and not current) or (separator == "?" and current is None):
            raise MissingVariable(f"{name}: {default}")
        return current or ""

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", substitute, value)


def env_map(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target path -> source (named volume or bind path) for compose short or long volume syntax."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            mounts[parts[1]] = parts[0]
        else:
            mounts[entry["target"]] = entry["source"]
    return mounts


def read_only_mounts(service: dict[str, Any]) -> set[str]:
    """Targets of a compose service's mounts that are read-only (`:ro` or `read_only: true`)."""
    found = set()
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) > 2 and "ro" in parts[2].split(","):
                found.add(parts[1])
        elif entry.get("read_only"):
            found.add(entry["target"])
    return found


def cpu_cores(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(value: Any) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, f"not a Kubernetes quantity: {value!r}"
    number, suffix = float(match.group(1)), match.group(2)
    scale = _BINARY.get(suffix) or _DECIMAL.get(suffix)
    assert scale, f"unknown quantity suffix in {value!r}"
    return number * scale


def redis_memory_bytes(value: str) -> int:
    """Redis units: k/m/g are powers of 1000, kb/mb/gb powers of 1024 (see redis.conf 'Units')."""
    match = re.fullmatch(r"(\d+)(b|k|kb|m|mb|g|gb)?", value.lower())
    assert match, f"not a Redis memory size: {value!r}"
    scale = {None: 1, "b": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(match.group(1)) * scale[match.group(2)]


def parse_redis_conf(text: str) -> dict[str, list[list[str]]]:
    directives: dict[str, list[list[str]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = shlex.split(stripped)
        assert len(words) >= 2, f"redis.conf line {number}: directive without a value: {line!r}"
        directives.setdefault(words[0].lower(), []).append(words[1:])
    return directives


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def dockerignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics as far as this repo uses them: last matching pattern wins, `!` re-includes,
    a pattern matching a parent directory excludes everything below it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern[1:] if negated else pattern
        if any(fnmatch.fnmatch(candidate, glob) for candidate in candidates):
            ignored = not negated
    return ignored


def load_k8s() -> dict[str, list[dict[str, Any]]]:
    manifests: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        manifests[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return manifests


K8S = load_k8s()
ALL_DOCS = [doc for docs in K8S.values() for doc in docs]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in ALL_DOCS if doc["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    return {**objects("Deployment"), **objects("StatefulSet")}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: expected one container"
    return containers[0]


def generated_k8s_objects(secrets_dir: Path) -> dict[tuple[str, str], set[str]]:
    """(kind, name) -> keys of the Secrets and ConfigMaps that the kustomization written by `tunegate secrets
    generate` makes, read the way kustomize reads it (`key=path` or the file's name; `key=value` literals;
    env files line by line; the operator's database.env holds TUNEGATE_DATABASE_URL)."""
    document = yaml.safe_load((secrets_dir / "kustomization.yaml").read_text())
    made: dict[tuple[str, str], set[str]] = {}
    for kind, section in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for generator in document.get(section, []):
            keys = {
                entry.split("=", 1)[0] if "=" in entry else Path(entry).name for entry in generator.get("files", [])
            }
            keys |= {entry.split("=", 1)[0] for entry in generator.get("literals", [])}
            for env_file in generator.get("envs", []):
                assert env_file == DATABASE_ENV_FILE, f"unexpected env file {env_file}"
                keys.add("TUNEGATE_DATABASE_URL")
            made[(kind, generator["name"])] = keys
    return made


def provided_k8s_objects(secrets_dir: Path) -> dict[tuple[str, str], set[str]]:
    """Everything a pod may refer to: objects in infra/k8s plus the generated ones."""
    found = generated_k8s_objects(secrets_dir)
    for doc in ALL_DOCS:
        if doc["kind"] in {"Secret", "ConfigMap"}:
            keys = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
            found[(doc["kind"], doc["metadata"]["name"])] = keys
    return found


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def backing_volume(mounts: dict[str, str], path: str) -> tuple[str, str]:
    """(volume, path inside it) that a container sees at `path`: the deepest mount containing it wins."""
    covering = [target for target in mounts if path == target or path.startswith(target.rstrip("/") + "/")]
    assert covering, f"nothing is mounted at or above {path}"
    target = max(covering, key=len)
    return mounts[target], path[len(target):].lstrip("/")


def k8s_mounts(workload: dict[str, Any]) -> dict[str, str]:
    """mountPath -> "<kind>:<name>[/<subPath>]" of a pod's single container, naming the storage behind the
    volume (a PVC's claim, a Secret, ...) so that two pods mounting one claim compare equal."""
    volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
    mounts = {}
    for mount in only_container(workload)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "persistentVolumeClaim" in volume:
            source = f"pvc:{volume['persistentVolumeClaim']['claimName']}"
        elif "secret" in volume:
            source = f"secret:{volume['secret']['secretName']}"
        elif "configMap" in volume:
            source = f"configMap:{volume['configMap']['name']}"
        else:
            source = f"pod-local:{workload['metadata']['name']}/{mount['name']}"
        mounts[mount["mountPath"]] = f"{source}/{mount['subPath']}" if mount.get("subPath") else source
    return mounts


@pytest.fixture(scope="module")
def compose_env(secrets_dir: Path) -> dict[str, str]:
    """What `docker compose --env-file DIR/.env` sees after `tunegate secrets generate DIR`, nothing else."""
    return read_env_file(secrets_dir / ".env")


@pytest.fixture(scope="module")
def compose(compose_env: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env=compose_env)


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return yaml.safe_load(COLLECTOR_FILE.read_text())


# ------------------------------------------------------------------------------------------ compose


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose binary not installed (Debian: apt-get install docker-compose)")
    return binary


def docker_compose_config(
    compose_file: Path, env_file: Path | None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME from the caller: a TUNEGATE_* variable in the test runner's environment must not
    # stand in for the generated env file.
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ} | (extra_env or {})
    return subprocess.run(
        [_docker_compose(), *(["--env-file", str(env_file)] if env_file else []), "-f", str(compose_file), "config"],
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def published(config_text: str, service: str) -> list[str]:
    ports = yaml.safe_load(config_text)["services"][service].get("ports", [])
    return [entry if isinstance(entry, str) else f"{entry.get('host_ip', '')}:{entry['published']}" for entry in ports]


def test_docker_compose_accepts_compose_yaml_with_generated_secrets(secrets_dir: Path) -> None:
    result = docker_compose_config(COMPOSE_FILE, secrets_dir / ".env")
    assert result.returncode == 0, f"docker-compose config rejected compose.yaml:\n{result.stderr}"
    for name in HTTP_SERVICES:
        assert all(entry.startswith("127.0.0.1:") for entry in published(result.stdout, name)), (
            f"{name} must publish on loopback unless the operator opts in"
        )
    opted_in = docker_compose_config(COMPOSE_FILE, secrets_dir / ".env", {"TUNEGATE_BIND": "0.0.0.0"})
    assert opted_in.returncode == 0, opted_in.stderr
    for name in HTTP_SERVICES:
        assert all(entry.startswith("0.0.0.0:") for entry in published(opted_in.stdout, name)), name


def test_docker_compose_refuses_to_run_without_generated_secrets() -> None:
    result = docker_compose_config(COMPOSE_FILE, env_file=None)
    assert result.returncode != 0, "compose.yaml must not start with default passwords"
    assert "tunegate secrets generate" in result.stderr, result.stderr


def test_docker_compose_rejects_a_broken_copy(tmp_path: Path, secrets_dir: Path) -> None:
    broken = COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: when_it_feels_like_it", 1)
    assert broken != COMPOSE_FILE.read_text()
    (tmp_path / "compose.yaml").write_text(broken)
    result = docker_compose_config(tmp_path / "compose.yaml", secrets_dir / ".env")
    assert result.returncode != 0, "docker-compose accepted an invalid depends_on condition"
    assert "when_it_feels_like_it" in result.stderr, result.stderr


def test_compose_has_no_default_secret() -> None:
    text = COMPOSE_FILE.read_text()
    assert "CHANGE-ME" not in text
    with pytest.raises(MissingVariable):
        interpolate(yaml.safe_load(text), env={})
    generated = {POSTGRES_PASSWORD_VARIABLE, REDIS_PROBE_PASSWORD_VARIABLE, SECRETS_DIR_VARIABLE}
    generated |= {redis_url_variable(name) for name in TUNEGATE_SERVICES}
    used = set()
    for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", text):
        if match.group(1) in generated:
            used.add(match.group(1))
            rule = match.group(2)
            assert rule.startswith(":?") and "tunegate secrets generate" in rule, (
                f"${{{match.group(1)}}} must be required, with instructions, never defaulted"
            )
    assert used == generated, f"generated but unused by compose.yaml: {sorted(generated - used)}"


def http_port(compose: dict[str, Any], name: str) -> int:
    """The port an HTTP service listens on, as compose configures it (k8s and the Dockerfile must agree)."""
    return int(env_map(compose["services"][name])[f"TUNEGATE_{name.upper()}_PORT"])


def deployed_tunegate_services(compose: dict[str, Any]) -> set[str]:
    """Services that run the tunegate image, in compose and as Kubernetes Deployments."""
    in_compose = {name for name, service in compose["services"].items() if "SERVICE" in env_map(service)}
    in_k8s = {
        name
        for name, workload in objects("Deployment").items()
        if only_container(workload)["image"].startswith("tunegate:")
    }
    return in_compose | in_k8s


def test_compose_has_exactly_the_expected_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(TUNEGATE_SERVICES) | set(INFRA_SERVICES) | set(OPERATOR_TOOLS)


def test_compose_cli_runs_only_on_request(compose: dict[str, Any]) -> None:
    cli = compose["services"]["cli"]
    assert cli["profiles"], "`docker compose up` must not start the CLI"
    assert cli["entrypoint"] == ["tunegate"]
    assert not cli.get("ports")


def test_every_deployed_service_exists_and_every_service_is_deployed(compose: dict[str, Any]) -> None:
    deployed = deployed_tunegate_services(compose)
    for name in sorted(deployed):
        assert (REPO / "services" / name / "__main__.py").is_file(), (
            f"{name} is deployed (compose.yaml or infra/k8s) but services/{name}/__main__.py does not exist: "
            "the container would crash-loop"
        )
    missing = set(TUNEGATE_SERVICES) - deployed
    assert not missing, f"in shared/roster.py but not deployed: {sorted(missing)} (add compose and infra/k8s entries)"
    in_compose = {name for name, service in compose["services"].items() if "SERVICE" in env_map(service)}
    assert in_compose == set(TUNEGATE_SERVICES), "compose.yaml must run exactly the roster's services"
    assert set(objects("Deployment")) - {"otel-collector", "jaeger"} == set(TUNEGATE_SERVICES), "infra/k8s Deployments"


def test_dockerfile_names_the_roster() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    entrypoint = next(args for keyword, args in instructions if keyword == "ENTRYPOINT")
    listed = re.search(r"one of ([a-z, ]+)\}", entrypoint)
    assert listed, "the ENTRYPOINT's message for a missing SERVICE lists the services"
    assert sorted(listed.group(1).split(", ")) == sorted(TUNEGATE_SERVICES)


@pytest.mark.parametrize("name", TUNEGATE_SERVICES)
def test_compose_tunegate_service_wiring(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    where = f"compose.yaml services.{name}"

    build = service["build"]
    assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), f"{where}: no Dockerfile"
    images = {compose["services"][other]["image"] for other in TUNEGATE_SERVICES}
    assert len(images) == 1, f"tunegate services must share one image, found {images}"

    env = env_map(service)
    assert env.get("SERVICE") == name, f"{where}: SERVICE selects the module services.<name>"
    assert env.get("TUNEGATE_HOME") == TUNEGATE_HOME

    redis_url = urlsplit(env["TUNEGATE_REDIS_URL"])
    assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379), where
    db_url = urlsplit(env["TUNEGATE_DATABASE_URL"])
    assert db_url.scheme == "postgresql" and db_url.hostname == "postgres", where
    otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert otlp.hostname == "otel-collector" and otlp.hostname in compose["services"], where
    # The Python services use the OTLP/HTTP exporter.
    assert otlp.scheme == "http" and otlp.port == 4318, where

    depends = service["depends_on"]
    assert depends["install-secrets"]["condition"] == "service_completed_successfully", where
    assert depends["redis"]["condition"] == "service_healthy", where
    assert depends["postgres"]["condition"] == "service_healthy", where
    assert "otel-collector" in depends, where

    assert volume_mounts(service).get(TUNEGATE_HOME) == "tunegate-home", f"{where}: shared artefact volume"
    assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, where
    assert service.get("healthcheck", {}).get("test"), f"{where}: healthcheck"


def test_compose_credentials_agree(compose: dict[str, Any], compose_env: dict[str, str], secrets_dir: Path) -> None:
    services = compose["services"]
    credentials = RedisCredentials(secrets_dir / "redis")
    postgres_env = env_map(services["postgres"])
    assert postgres_env["POSTGRES_PASSWORD"] == compose_env[POSTGRES_PASSWORD_VARIABLE]
    for name in TUNEGATE_SERVICES:
        env = env_map(services[name])
        redis_url = urlsplit(env["TUNEGATE_REDIS_URL"])
        assert redis_url.username == name, f"{name} must connect to Redis as its own ACL user"
        assert redis_url.password == credentials.password(name), name
        db_url = urlsplit(env["TUNEGATE_DATABASE_URL"])
        assert db_url.username == postgres_env["POSTGRES_USER"], name
        assert db_url.password == postgres_env["POSTGRES_PASSWORD"], name
        assert db_url.path.lstrip("/") == postgres_env["POSTGRES_DB"], name
    redis_service = services["redis"]
    assert env_map(redis_service)["REDISCLI_AUTH"] == credentials.password(OPERATOR), "healthcheck authenticates"
    assert f"--user {OPERATOR} ping" in " ".join(redis_service["healthcheck"]["test"])
    cli_url = urlsplit(env_map(services["cli"])["TUNEGATE_REDIS_URL"])
    assert (cli_url.username, cli_url.password) == (OPERATOR, credentials.password(OPERATOR))
    assert "TUNEGATE_DATABASE_URL" not in env_map(services["cli"]), "the CLI goes through the registry API"


def test_compose_redis_loads_the_generated_acl_file(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis_service = services["redis"]
    command = [str(part) for part in redis_service["command"]]
    assert "--requirepass" not in command, "one shared password is what the ACL users replace"
    acl_path = Path(command[command.index("--aclfile") + 1])
    mounts = volume_mounts(redis_service)
    acl_volume = mounts[str(acl_path.parent)]
    assert str(acl_path.parent) in read_only_mounts(redis_service)
    installer = services["install-secrets"]
    installed_at = next(target for target, source in volume_mounts(installer).items() if source == acl_volume)
    script = "\n".join(installer["command"])
    assert f"/secrets/{SecretsLayout(Path()).acl_file} {installed_at}/{acl_path.name}" in script
    assert redis_service["depends_on"]["install-secrets"]["condition"] == "service_completed_successfully"
    users_of_acl = {name for name, service in services.items() if acl_volume in volume_mounts(service).values()}
    assert users_of_acl == {"redis", "install-secrets"}


def test_compose_each_service_mounts_only_its_own_signing_key(
    compose: dict[str, Any], compose_env: dict[str, str]
) -> None:
    services = compose["services"]
    installer = services["install-secrets"]
    installer_mounts = volume_mounts(installer)
    assert installer_mounts["/secrets"] == compose_env[SECRETS_DIR_VARIABLE]
    assert "/secrets" in read_only_mounts(installer), "the generated secrets are never written by compose"
    assert installer.get("network_mode") == "none"
    key_volumes = {}
    for name in TUNEGATE_SERVICES:
        service = services[name]
        keys_dir = env_map(service)["TUNEGATE_KEYS_DIR"]
        volume = volume_mounts(service)[keys_dir]
        assert keys_dir in read_only_mounts(service), f"{name}: keys are mounted read-only"
        assert installer_mounts[f"/install/keys/{name}"] == volume, f"install-secrets fills {name}'s key volume"
        key_volumes[name] = volume
    assert len(set(key_volumes.values())) == len(TUNEGATE_SERVICES), "no two services share a key volume"
    for volume_name, owner in ((volume, name) for name, volume in key_volumes.items()):
        holders = {name for name, service in services.items() if volume_name in volume_mounts(service).values()}
        assert holders == {owner, "install-secrets"}, f"{volume_name} is seen by {holders}"
    assert set(installer_mounts) - {"/secrets", "/install/redis"} == {f"/install/keys/{n}" for n in TUNEGATE_SERVICES}


def test_install_secrets_script_gives_each_service_a_readable_key_tree(
    tmp_path: Path, compose: dict[str, Any], secrets_dir: Path
) -> None:
    """Runs install-secrets' script on this machine with its mount points moved under tmp_path."""
    if os.geteuid() != 0:
        pytest.skip("the script chowns to the container users, which needs root")
    script = "\n".join(compose["services"]["install-secrets"]["command"])
    secrets_copy = tmp_path / "secrets"
    shutil.copytree(secrets_dir, secrets_copy)
    install = tmp_path / "install"
    for target in volume_mounts(compose["services"]["install-secrets"]):
        if target.startswith("/install/"):
            (tmp_path / target.lstrip("/")).mkdir(parents=True)
    script = script.replace("/secrets/", f"{secrets_copy}/").replace("/install/", f"{install}/")
    result = subprocess.run(["/bin/sh", "-ec", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    acl = install / "redis" / "users.acl"
    assert acl.read_bytes() == (secrets_dir / "redis" / "users.acl").read_bytes()
    assert (acl.stat().st_uid, stat.S_IMODE(acl.stat().st_mode)) == (999, 0o400), "readable by redis only"
    from shared.security.signing import KeyDirectory

    for name in TUNEGATE_SERVICES:
        root = install / "keys" / name
        key_file = root / "signing" / f"{name}.key"
        assert (key_file.stat().st_uid, stat.S_IMODE(key_file.stat().st_mode)) == (10001, 0o400), name
        assert sorted(path.name for path in (root / "signing").iterdir()) == [f"{name}.key"], "only its own key"
        keys = KeyDirectory(root)
        signer = keys.existing_signer(name)
        for other in TUNEGATE_SERVICES:
            assert keys.public_keys(other), f"{name} cannot verify {other}"
        assert keys.lookup(name, signer.key_id) is not None
        for path in root.rglob("*"):
            assert path.stat().st_uid == 10001 and not stat.S_IMODE(path.stat().st_mode) & 0o077, path


@pytest.mark.parametrize("name", HTTP_SERVICES)
def test_compose_http_services_publish_their_port(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = http_port(compose, name)
    assert [str(entry) for entry in service["ports"]] == [f"127.0.0.1:{port}:{port}"], "loopback by default"
    env = env_map(service)
    assert env[f"TUNEGATE_{name.upper()}_PORT"] == str(port)
    assert env[f"TUNEGATE_{name.upper()}_HOST"] == "0.0.0.0", "loopback is unreachable through a published port"
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])


def test_compose_workers_publish_no_ports_and_probe_their_heartbeat(compose: dict[str, Any]) -> None:
    for name in WORKER_SERVICES:
        service = compose["services"][name]
        assert not service.get("ports"), name
        # The probe script takes the service from $SERVICE, which the wiring test pins to the name.
        assert service["healthcheck"]["test"] == ["CMD", "python", PROBE_SCRIPT], name


def test_compose_trainer_runs_two_replicas(compose: dict[str, Any]) -> None:
    trainer = compose["services"]["trainer"]
    assert trainer["deploy"]["replicas"] == 2
    assert "container_name" not in trainer, "a fixed container name prevents replicas"


def test_compose_audit_ledger_key_is_private_and_persistent(compose: dict[str, Any]) -> None:
    keys = f"{TUNEGATE_HOME}/keys"
    source = volume_mounts(compose["services"]["audit"]).get(keys)
    assert source in compose["volumes"], "audit keys need a named (persistent) volume"
    for name, service in compose["services"].items():
        if name != "audit":
            assert source not in volume_mounts(service).values(), f"{name} must not see the signing key"


def test_canary_key_users_are_the_services_that_read_it() -> None:
    for name in CANARY_KEY_USERS:
        assert "canary_key" in (REPO / "services" / name / "bootstrap.py").read_text(), name


def test_compose_scanner_and_evaluator_share_one_persistent_canary_key(compose: dict[str, Any]) -> None:
    """Each creates keys/canary.key on first use: with two files the evaluator would look for canaries that
    were never planted, find none, and pass every canary-exposure check."""
    services = compose["services"]
    seen = {name: backing_volume(volume_mounts(services[name]), CANARY_KEY_PATH) for name in CANARY_KEY_USERS}
    assert len(set(seen.values())) == 1, f"scanner and evaluator see different canary key files: {seen}"
    volume, _ = next(iter(seen.values()))
    assert volume in compose["volumes"], "the canary key must outlive the containers (a named volume)"
    holders = {name for name, service in compose["services"].items() if volume in volume_mounts(service).values()}
    assert set(CANARY_KEY_USERS) <= holders


def test_compose_volumes_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in volume_mounts(service).items():
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount source {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
            assert target.startswith("/"), f"{name}: {target}"


def test_compose_redis_is_durable(compose: dict[str, Any]) -> None:
    service = compose["services"]["redis"]
    assert service["image"].split(":")[1].startswith("7")
    command = " ".join(str(part) for part in service["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    mounts = volume_mounts(service)
    conf_target = next(target for target, source in mounts.items() if source.endswith("infra/redis/redis.conf"))
    assert service["command"][:2] == ["redis-server", conf_target], "redis must load the mounted config"
    data_dir = parse_redis_conf(REDIS_CONF.read_text())["dir"][0][0]
    assert mounts[data_dir] in compose["volumes"], "the AOF directory must be on a named volume"
    assert "ping" in " ".join(service["healthcheck"]["test"])


def test_compose_postgres_and_collector(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert volume_mounts(postgres)["/var/lib/postgresql/data"] in compose["volumes"]

    collector = compose["services"]["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector-contrib:")
    config_arg = next(arg for arg in collector["command"] if arg.startswith("--config="))
    config_path = config_arg.split("=", 1)[1]
    assert volume_mounts(collector)[config_path] == "./infra/otel/collector.yaml"


def test_compose_collector_forwards_traces_to_jaeger(compose: dict[str, Any], collector: dict[str, Any]) -> None:
    jaeger = compose["services"]["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:") and not jaeger["image"].endswith(":latest")
    # The UI on the loopback only; spans reach Jaeger through the collector, so its OTLP port stays unpublished.
    assert jaeger["ports"] == ["127.0.0.1:16686:16686"]
    endpoint = urlsplit("//" + collector["exporters"]["otlp/jaeger"]["endpoint"])
    assert endpoint.hostname == "jaeger" and endpoint.port == 4317
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert "jaeger" in compose["services"]["otel-collector"]["depends_on"]


# ------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_build_order_and_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["python:3.11-slim"], froms

    runs = [(index, args) for index, (keyword, args) in enumerate(instructions) if keyword == "RUN"]
    torch_step = next(
        index for index, args in runs if "torch==2.13.0" in args and "download.pytorch.org/whl/cpu" in args
    )
    project_step = next(index for index, args in runs if re.search(r"pip install \S*\.\[scan,train\]", args))
    assert torch_step < project_step, "CPU torch must be installed before the project pulls in torch"

    users = [(index, args) for index, (keyword, args) in enumerate(instructions) if keyword == "USER"]
    assert users, "the image must drop root"
    user_index, user = users[-1]
    assert user_index > max(index for index, _ in runs), "USER must come after every RUN"
    uid = user.split(":")[0]
    assert uid not in {"root", "0"}

    # Kubernetes runs the pods as the same numeric UID (runAsNonRoot needs a numeric one).
    for name in TUNEGATE_SERVICES:
        assert str(pod_spec(workloads()[name])["securityContext"]["runAsUser"]) == uid, name


def test_dockerfile_entrypoint_and_no_downloads() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    entry = " ".join(args for keyword, args in instructions if keyword in {"ENTRYPOINT", "CMD"})
    assert "python -m" in entry and "services.${SERVICE" in entry
    entrypoint = next(args for keyword, args in instructions if keyword == "ENTRYPOINT")
    assert json.loads(entrypoint)[:3] == ["/usr/bin/tini", "-g", "--"], "PID 1 must forward SIGTERM"
    run_text_all = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "install -y --no-install-recommends tini" in run_text_all
    run_text = " ".join(args for keyword, args in instructions if keyword == "RUN")
    for forbidden in ("huggingface-cli", "snapshot_download", "from_pretrained", "hf_hub_download", "wget", "curl"):
        assert forbidden not in run_text, f"the build must not download models ({forbidden})"
    env_text = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert f"TUNEGATE_HOME={TUNEGATE_HOME}" in env_text


def test_dockerfile_copy_sources_exist_and_context_is_clean() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    copies: dict[str, str] = {}
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and "--from" not in args:
            *sources, target = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile COPY source {source} is missing: docker build fails"
                assert not dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
                copies[source] = target
    assert copies["infra/docker/healthcheck.py"] == PROBE_SCRIPT, "probes run the script at PROBE_SCRIPT"
    private_paths = (".git", ".venv", "var", "var/db/registry.sqlite3", "tests/conftest.py", "secrets/.env")
    for private in (*private_paths, "secrets/keys/signing/audit.key", "services/var/db/x.sqlite3", "shared/.env"):
        assert dockerignored(private, patterns), f"{private} must stay out of the build context"


# ------------------------------------------------------------------------------------------ Kubernetes schema


@pytest.fixture(scope="module")
def k8s_validator() -> Any:
    try:
        from kubernetes_validate import utils
    except ImportError:
        pytest.fail("kubernetes-validate is missing: pip install -e '.[dev]'")
    return utils


def _k8s_versions() -> list[str]:
    try:
        from kubernetes_validate.utils import latest_version
    except ImportError:
        return [OLDEST_SUPPORTED_K8S]
    return sorted({OLDEST_SUPPORTED_K8S, latest_version()})


@pytest.mark.parametrize("version", _k8s_versions())
@pytest.mark.parametrize("filename", sorted(K8S))
def test_k8s_manifest_matches_schema(k8s_validator: Any, filename: str, version: str) -> None:
    assert K8S[filename], f"{filename} holds no objects"
    for doc in K8S[filename]:
        where = f"{filename}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            k8s_validator.validate(doc, version, strict=True)
        except k8s_validator.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")
        except k8s_validator.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{where} invalid for Kubernetes {version} at {path}: {exc.message}")


def test_k8s_schema_validation_catches_mistakes(k8s_validator: Any) -> None:
    scanner = workloads()["scanner"]
    wrong_type = copy.deepcopy(scanner)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(k8s_validator.ValidationError):
        k8s_validator.validate(wrong_type, OLDEST_SUPPORTED_K8S, strict=True)
    misspelt = copy.deepcopy(scanner)
    misspelt["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(k8s_validator.ValidationError):
        k8s_validator.validate(misspelt, OLDEST_SUPPORTED_K8S, strict=True)


# ------------------------------------------------------------------------------------------ Kubernetes structure


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(K8S), "kustomization resources != files in infra/k8s"
    assert kustomization["namespace"] == NAMESPACE
    image_names = {entry["name"] for entry in kustomization["images"]}
    for name in TUNEGATE_SERVICES:
        image = only_container(workloads()[name])["image"]
        assert image.rsplit(":", 1)[0] in image_names, f"{name}: image {image} not overridable by kustomize"


def test_k8s_objects_are_namespaced_and_unique() -> None:
    seen: set[tuple[str, str]] = set()
    for doc in ALL_DOCS:
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{key} outside namespace {NAMESPACE}"
    assert objects("Namespace")[NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", sorted(workloads()))
def test_k8s_workload_is_hardened_probed_and_sized(name: str, secrets_dir: Path) -> None:
    workload = workloads()[name]
    spec = pod_spec(workload)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), f"{name}: selector does not match its pod labels"

    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0, name
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", name

    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    claim_templates = {tpl["metadata"]["name"] for tpl in workload["spec"].get("volumeClaimTemplates", [])}
    for container in spec["containers"]:
        where = f"{name}/{container['name']}"
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        assert container.get("readinessProbe") and container.get("livenessProbe"), f"{where}: probes"

        resources = container["resources"]
        for kind in ("cpu", "memory"):
            assert kind in resources["requests"] and kind in resources["limits"], f"{where}: {kind} sizing"
        assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"]), where
        assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(resources["limits"]["memory"]), where

        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes or mount["name"] in claim_templates, f"{where}: {mount['name']}"

    claims = objects("PersistentVolumeClaim")
    provided = provided_k8s_objects(secrets_dir)
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims, f"{name}: {volume}"
        for kind, field, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
            if field in volume:
                source = (kind, volume[field][name_key])
                assert source in provided, f"{name}: {kind} {source[1]} is neither in infra/k8s nor generated"
                for item in volume[field].get("items", []):
                    assert item["key"] in provided[source], f"{name}: {kind} {source[1]} has no key {item['key']}"


def test_k8s_env_references_resolve(secrets_dir: Path) -> None:
    provided = provided_k8s_objects(secrets_dir)
    for name, workload in workloads().items():
        for container in pod_spec(workload)["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in provided, name
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in provided, name
            for item in container.get("env", []):
                for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    ref = item.get("valueFrom", {}).get(field)
                    if ref:
                        assert ref["key"] in provided.get((kind, ref["name"]), set()), f"{name}: {ref}"


@pytest.mark.parametrize("name", TUNEGATE_SERVICES)
def test_k8s_tunegate_deployment(compose: dict[str, Any], name: str) -> None:
    deployment = objects("Deployment")[name]
    container = only_container(deployment)
    images = {only_container(objects("Deployment")[other])["image"] for other in TUNEGATE_SERVICES}
    assert len(images) == 1, f"tunegate Deployments must share one image, found {images}"

    env = container_env(container)
    assert env.get("SERVICE") == name or f"services.{name}" in container.get("command", []), name
    env_from = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert {"tunegate-config", DATABASE_SECRET} <= env_from, name
    redis_ref = env["TUNEGATE_REDIS_URL"]["secretKeyRef"]
    assert redis_ref == {"name": service_secret_name(name), "key": "redis-url"}, f"{name}: its own Redis user"

    config = objects("ConfigMap")["tunegate-config"]["data"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    home_volume = volumes[mounts[config["TUNEGATE_HOME"]]]
    assert home_volume["persistentVolumeClaim"]["claimName"] == "tunegate-artifacts", name

    probes = [container[key] for key in ("readinessProbe", "livenessProbe")]
    if name in HTTP_SERVICES:
        port = http_port(compose, name)
        named_ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
        for probe in probes:
            assert probe["httpGet"]["path"] == "/healthz", name
            assert named_ports[probe["httpGet"]["port"]] == port, name
        assert env[f"TUNEGATE_{name.upper()}_PORT"] == str(port)
        assert env[f"TUNEGATE_{name.upper()}_HOST"] == "0.0.0.0"
    else:
        for probe in [*probes, container["startupProbe"]]:
            assert probe["exec"]["command"] == ["python", PROBE_SCRIPT, name], f"{name}: heartbeat probe"


def test_k8s_trainer_runs_on_gpus_under_accelerate() -> None:
    trainer = objects("Deployment")["trainer"]
    container = only_container(trainer)
    assert int(container["resources"]["limits"][GPU]) == 1
    spec = pod_spec(trainer)
    selects_gpu_nodes = any(GPU in key for key in spec.get("nodeSelector", {}))
    tolerates_gpu_taint = any(toleration.get("key") == GPU for toleration in spec.get("tolerations", []))
    assert selects_gpu_nodes and tolerates_gpu_taint
    command = container["command"]
    # accelerate launch neither handles nor forwards SIGTERM: tini must signal the whole process group.
    assert command[:3] == ["/usr/bin/tini", "-g", "--"], "trainer needs a signal-forwarding init"
    assert command[3:5] == ["accelerate", "launch"] and command[-2:] == ["-m", "services.trainer"]
    assert command[command.index("--num_processes") + 1] == "1", "each process is a bus consumer"
    assert trainer["spec"]["replicas"] >= 2, "trainers scale out as replicas of one consumer group"


def test_k8s_services_select_pods_and_ports(compose: dict[str, Any]) -> None:
    for name, service in objects("Service").items():
        selector = service["spec"]["selector"]
        matches = [
            workload
            for workload in workloads().values()
            if selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"Service {name} selects {len(matches)} workloads"
        ports = {entry["name"] for container in pod_spec(matches[0])["containers"] for entry in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: targetPort {port['targetPort']}"
    for name in HTTP_SERVICES:
        assert [entry["port"] for entry in objects("Service")[name]["spec"]["ports"]] == [http_port(compose, name)]
    exposed = {
        int(port)
        for keyword, args in dockerfile_instructions(DOCKERFILE.read_text())
        if keyword == "EXPOSE"
        for port in args.split()
    }
    assert exposed == {http_port(compose, name) for name in HTTP_SERVICES}, "Dockerfile EXPOSE = the HTTP ports"


def test_k8s_storage_and_audit_keys() -> None:
    claims = objects("PersistentVolumeClaim")
    assert claims["tunegate-artifacts"]["spec"]["accessModes"] == ["ReadWriteMany"]
    users = {}
    for name, workload in workloads().items():
        for volume in pod_spec(workload).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                users.setdefault(volume["persistentVolumeClaim"]["claimName"], set()).add(name)
    assert users["tunegate-artifacts"] == set(TUNEGATE_SERVICES), "every service shares the artefact store"
    key_claims = [claim for claim in claims if claim != "tunegate-artifacts"]
    assert [claim for claim in key_claims if users.get(claim) == {"audit"}], "audit keys on a private volume"
    audit = objects("Deployment")["audit"]
    mounts = {mount["mountPath"]: mount["name"] for mount in only_container(audit)["volumeMounts"]}
    key_volume = next(v for v in pod_spec(audit)["volumes"] if v["name"] == mounts[f"{TUNEGATE_HOME}/keys"])
    assert users[key_volume["persistentVolumeClaim"]["claimName"]] == {"audit"}
    assert audit["spec"]["replicas"] == 1 and audit["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_scanner_and_evaluator_share_one_persistent_canary_key() -> None:
    deployments = objects("Deployment")
    seen = {name: backing_volume(k8s_mounts(deployments[name]), CANARY_KEY_PATH) for name in CANARY_KEY_USERS}
    assert len(set(seen.values())) == 1, f"scanner and evaluator see different canary key files: {seen}"
    source, _ = next(iter(seen.values()))
    assert source.startswith("pvc:"), f"the canary key must outlive the pods, found it on {source}"
    claim = objects("PersistentVolumeClaim")[source.removeprefix("pvc:").split("/")[0]]
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "replicas on other nodes must reach the same file"


def test_k8s_manifests_hold_no_secret() -> None:
    assert not objects("Secret"), "Secrets come from `tunegate secrets generate`, never from the repository"
    for path in K8S_DIR.iterdir():
        assert "CHANGE-ME" not in path.read_text(), f"{path.name}: a placeholder would be deployed as is"
    instructions = (K8S_DIR / "kustomization.yaml").read_text()
    assert "tunegate secrets generate" in instructions and "kubectl apply -k DIR" in instructions


@pytest.mark.parametrize("name", TUNEGATE_SERVICES)
def test_k8s_each_service_mounts_its_own_key_and_every_public_key(name: str, secrets_dir: Path) -> None:
    deployment = objects("Deployment")[name]
    container = only_container(deployment)
    keys_dir = objects("ConfigMap")["tunegate-config"]["data"]["TUNEGATE_KEYS_DIR"]
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

    signing = mounts[f"{keys_dir}/signing"]
    assert signing.get("readOnly") is True, name
    secret = volumes[signing["name"]]["secret"]
    assert secret["secretName"] == service_secret_name(name), f"{name} must mount only its own signing key"
    assert secret["items"] == [{"key": "signing-key", "path": f"{name}.key"}], "KeyDirectory's file name"
    assert secret["defaultMode"] == 0o400
    assert pod_spec(deployment)["securityContext"]["fsGroup"] == 10001, "group read for the non-root user"

    for other in TUNEGATE_SERVICES:
        trust = mounts[f"{keys_dir}/trust/{other}"]
        assert trust.get("readOnly") is True, name
        assert volumes[trust["name"]]["configMap"]["name"] == trust_config_map_name(other), f"{name} -> {other}"

    referenced = {volume["secret"]["secretName"] for volume in volumes.values() if "secret" in volume}
    referenced |= {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    others = {service_secret_name(other) for other in TUNEGATE_SERVICES if other != name}
    assert not referenced & others, f"{name} refers to another service's Secret"
    assert ("Secret", service_secret_name(name)) in generated_k8s_objects(secrets_dir)


def test_k8s_generated_objects_build_and_match_schema(tmp_path: Path, secrets_dir: Path, k8s_validator: Any) -> None:
    """kubectl's kustomize builds the generated directory and infra/k8s; both outputs validate."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: generated objects are checked structurally only")
    copy_dir = tmp_path / "secrets"
    shutil.copytree(secrets_dir, copy_dir)
    (copy_dir / DATABASE_ENV_FILE).write_text(
        "TUNEGATE_DATABASE_URL=postgresql://tunegate:pw@db.example:5432/tunegate\n"
    )
    built: list[dict[str, Any]] = []
    for directory in (copy_dir, K8S_DIR):
        result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        built += [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in built}
    assert set(generated_k8s_objects(secrets_dir)) <= names
    for doc in built:
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        for version in _k8s_versions():
            k8s_validator.validate(doc, version, strict=True)


def test_k8s_redis_statefulset_is_durable() -> None:
    config_map = objects("ConfigMap")["redis-config"]
    assert config_map["data"]["redis.conf"] == REDIS_CONF.read_text(), "ConfigMap drifted from infra/redis"
    redis_set = objects("StatefulSet")["redis"]
    container = only_container(redis_set)
    args = [str(arg) for arg in container["args"]]
    joined = " ".join(args)
    assert "--appendonly yes" in joined and "--appendfsync everysec" in joined
    assert "--requirepass" not in args, "one shared password is what the ACL users replace"
    acl_path = Path(args[args.index("--aclfile") + 1])
    acl_mount = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == str(acl_path.parent))
    assert acl_mount.get("readOnly") is True
    acl_volume = next(volume for volume in pod_spec(redis_set)["volumes"] if volume["name"] == acl_mount["name"])
    assert acl_volume["secret"]["secretName"] == REDIS_ACL_SECRET
    assert acl_volume["secret"]["items"] == [{"key": "users.acl", "path": acl_path.name}]
    probe_auth = container_env(container)["REDISCLI_AUTH"]["secretKeyRef"]
    assert probe_auth == {"name": REDIS_ACL_SECRET, "key": "operator-password"}
    assert f"--user {OPERATOR} ping" in " ".join(container["readinessProbe"]["exec"]["command"])
    maxmemory = redis_memory_bytes(args[args.index("--maxmemory") + 1])
    assert maxmemory < memory_bytes(container["resources"]["limits"]["memory"]), "Redis must refuse before OOM"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    data_dir = parse_redis_conf(REDIS_CONF.read_text())["dir"][0][0]
    claim_names = {tpl["metadata"]["name"] for tpl in redis_set["spec"]["volumeClaimTemplates"]}
    assert mounts[data_dir] in claim_names, "the AOF directory must be on the StatefulSet's PVC"
    config_dir = next(path for path, volume in mounts.items() if volume == "config")
    assert args[0] == f"{config_dir}/redis.conf"


def test_k8s_otel_collector(collector: dict[str, Any]) -> None:
    config_map = objects("ConfigMap")["otel-collector-config"]
    assert config_map["data"]["collector.yaml"] == COLLECTOR_FILE.read_text(), "ConfigMap drifted from infra/otel"
    container = only_container(objects("Deployment")["otel-collector"])
    config_arg = next(arg for arg in container["args"] if arg.startswith("--config="))
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert config_arg.split("=", 1)[1] == f"{mounts['config']}/collector.yaml"
    ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
    health_port = int(collector["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    assert ports[container["livenessProbe"]["httpGet"]["port"]] == health_port
    service_ports = {entry["port"] for entry in objects("Service")["otel-collector"]["spec"]["ports"]}
    assert {4317, 4318} <= service_ports
    otlp = urlsplit(objects("ConfigMap")["tunegate-config"]["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert otlp.hostname == "otel-collector" and otlp.port == 4318


def test_k8s_evaluator_runs_on_gpus() -> None:
    evaluator = objects("Deployment")["evaluator"]
    container = only_container(evaluator)
    assert int(container["resources"]["requests"][GPU]) == int(container["resources"]["limits"][GPU]) == 1
    spec = pod_spec(evaluator)
    assert any(GPU in key for key in spec.get("nodeSelector", {}))
    assert any(toleration.get("key") == GPU for toleration in spec.get("tolerations", []))
    # The pod asks for the GPU explicitly: on a node without one it fails instead of evaluating on the CPU.
    assert container_env(container)["TUNEGATE_EVALUATOR_DEVICE"] == "cuda"


def test_k8s_autoscalers_scale_the_gateway_and_the_trainer() -> None:
    autoscalers = objects("HorizontalPodAutoscaler")
    assert set(autoscalers) == {"gateway", "trainer"}
    for name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        deployment = objects("Deployment")[name]
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name
        assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"], f"{name}: Deployment vs HPA floor"
        # Utilisation is measured against requests: a container without a CPU request cannot be scaled on it.
        for metric in hpa["spec"]["metrics"]:
            resource = metric["resource"]["name"]
            assert resource in only_container(deployment)["resources"]["requests"], f"{name}: no {resource} request"


def _selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def test_k8s_every_replicated_workload_has_one_disruption_budget() -> None:
    budgets = objects("PodDisruptionBudget")
    for name, workload in workloads().items():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b, pdb in budgets.items() if _selected(pdb["spec"]["selector"], pod_labels)]
        if workload["spec"].get("replicas", 1) >= 2:
            assert len(covering) == 1, f"{name}: {len(covering)} disruption budgets"
            spec = budgets[covering[0]]["spec"]
            assert spec.get("minAvailable", 0) >= 1 or spec.get("maxUnavailable") == 1, name
            assert spec.get("minAvailable", 0) < workload["spec"]["replicas"], f"{name}: the budget blocks drains"
        else:  # minAvailable 1 on a single replica would block every drain of its node
            assert not covering, f"{name}: one replica, yet a disruption budget"


OUTSIDE = {"outside": "true"}  # the labels of a client outside the namespace (matches no pod selector)


def _ingress_allowed(pod_labels: dict[str, str], port: dict[str, Any], source: dict[str, str],
                     docs: list[dict[str, Any]] | None = None) -> bool:
    """Whether NetworkPolicy semantics let `source` (a pod's labels in this namespace, or OUTSIDE) connect to a
    pod with `pod_labels` on its container port `port` ({name, containerPort}), under the policies in `docs`
    (default: infra/k8s)."""
    policies = [
        doc for doc in (ALL_DOCS if docs is None else docs)
        if doc["kind"] == "NetworkPolicy" and "Ingress" in doc["spec"].get("policyTypes", ["Ingress"])
        and _selected(doc["spec"]["podSelector"], pod_labels)
    ]
    if not policies:
        return True  # not isolated
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p["port"] in (port.get("name"), port["containerPort"]) for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True  # from anywhere
            for peer in peers:
                if "ipBlock" in peer:
                    return True
                if source is not OUTSIDE and "namespaceSelector" not in peer \
                        and _selected(peer["podSelector"], source):
                    return True
    return False


def _pods_and_ports() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [
        (name, workload["spec"]["template"]["metadata"]["labels"], port)
        for name, workload in workloads().items()
        for container in pod_spec(workload)["containers"]
        for port in container.get("ports", [])
    ]


def test_k8s_only_the_gateway_and_the_registry_are_reachable_from_outside() -> None:
    exposed = {(name, port["containerPort"]) for name, labels, port in _pods_and_ports()
               if _ingress_allowed(labels, port, OUTSIDE)}
    assert exposed == {("gateway", 8081), ("registry", 8080)}


def test_k8s_redis_takes_connections_from_services_only() -> None:
    redis_set = objects("StatefulSet")["redis"]
    labels = redis_set["spec"]["template"]["metadata"]["labels"]
    port = only_container(redis_set)["ports"][0]
    base = {"app.kubernetes.io/name": "tunegate", "app.kubernetes.io/part-of": "tunegate"}
    for name in (*TUNEGATE_SERVICES, "cli"):
        assert _ingress_allowed(labels, port, {**base, "app.kubernetes.io/component": name}), name
    for name in ("jaeger", "otel-collector"):
        assert not _ingress_allowed(labels, port, {**base, "app.kubernetes.io/component": name}), name


def test_k8s_a_new_pod_is_closed_until_a_policy_opens_it() -> None:
    """The default deny is what keeps a workload added later (with a port, but no policy of its own) private."""
    newcomer = {"app.kubernetes.io/name": "tunegate", "app.kubernetes.io/component": "newcomer"}
    port = {"name": "http", "containerPort": 9000}
    assert not _ingress_allowed(newcomer, port, OUTSIDE)
    without = [doc for doc in ALL_DOCS if not (doc["kind"] == "NetworkPolicy"
                                               and doc["metadata"]["name"] == "default-deny-ingress")]
    assert _ingress_allowed(newcomer, port, OUTSIDE, without)


def test_k8s_jaeger_receives_the_collectors_traces(collector: dict[str, Any]) -> None:
    exporter = urlsplit("//" + collector["exporters"]["otlp/jaeger"]["endpoint"])
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    service = objects("Service")[exporter.hostname]
    assert exporter.port in {entry["port"] for entry in service["spec"]["ports"]}
    jaeger = only_container(objects("Deployment")["jaeger"])
    assert ":" in jaeger["image"] and not jaeger["image"].endswith(":latest"), "pin Jaeger's version"
    otel = objects("Deployment")["otel-collector"]
    port = next(p for p in only_container(objects("Deployment")["jaeger"])["ports"] if p["containerPort"] == 4317)
    jaeger_labels = objects("Deployment")["jaeger"]["spec"]["template"]["metadata"]["labels"]
    assert _ingress_allowed(jaeger_labels, port, otel["spec"]["template"]["metadata"]["labels"])


# ------------------------------------------------------------------------------------------ OTel collector


def test_collector_receives_otlp_on_both_protocols(collector: dict[str, Any]) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_collector_pipelines_reference_defined_components(collector: dict[str, Any]) -> None:
    service = collector["service"]
    for extension in service.get("extensions", []):
        assert extension in collector["extensions"], extension
    assert "traces" in service["pipelines"]
    for pipeline_name, pipeline in service["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline[section]:
                assert component in collector[section], f"{pipeline_name}: {section}.{component} undefined"
        assert "batch" in pipeline["processors"], f"{pipeline_name}: batch processor"
        if "memory_limiter" in pipeline["processors"]:
            assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must run first"
        assert "debug" in pipeline["exporters"], pipeline_name
    assert "otlp" in service["pipelines"]["traces"]["receivers"]
    alternatives = [name for name in collector["exporters"] if name.split("/")[0] in {"file", "otlp", "otlphttp"}]
    assert alternatives, "an example file or otlp exporter"


# ------------------------------------------------------------------------------------------ Redis config


def test_redis_conf_is_durable_and_never_evicts() -> None:
    directives = parse_redis_conf(REDIS_CONF.read_text())
    multi_valued = {"save", "include", "loadmodule", "rename-command"}
    for name, occurrences in directives.items():
        assert len(occurrences) == 1 or name in multi_valued, f"redis.conf sets {name} {len(occurrences)} times"

    def value(name: str) -> str:
        return " ".join(directives[name][0])

    assert value("appendonly") == "yes"
    assert value("appendfsync") == "everysec"
    assert value("maxmemory-policy") == "noeviction", "streams must never be evicted"
    assert value("protected-mode") in {"yes", "no"}
    assert directives["bind"], "bind must be explicit"
    assert value("dir").startswith("/")


def test_redis_server_accepts_config(redis_server: redis.Redis, tmp_path: Path) -> None:
    config = redis_server.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    redis_server.xadd("tunegate.jobs", {"probe": "1"})
    assert (tmp_path / config["appenddirname"]).is_dir(), "AOF directory created"
