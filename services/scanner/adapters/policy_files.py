"""Reading scan policies: the bundled ones by name, or any YAML file by path, validated into a Policy."""

from __future__ import annotations

from pathlib import Path

from services.scanner.domain.policy import Policy, PolicyError
from shared.yaml_models import load_yaml_model

BUILTIN_POLICIES = Path(__file__).resolve().parent.parent / "config" / "policies"


def load_policy(name_or_path: str | Path) -> Policy:
    """A policy by file path, or by name from the bundled policies (`default`)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = BUILTIN_POLICIES / f"{name_or_path}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in BUILTIN_POLICIES.glob("*.yaml"))
        raise PolicyError(f"policy {name_or_path!r} not found (no file {path}; bundled: {available})")
    return load_yaml_model(path, Policy, "policy", PolicyError)
