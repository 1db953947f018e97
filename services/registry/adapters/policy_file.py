"""Reading the registry policy: the YAML named by settings, or the bundled default."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from services.registry.domain.policy import Policy, PolicyError, RiskRuleRegistry, parse_policy
from shared.yaml_models import load_yaml_document


def load_policy(path: Path | None = None, registry: RiskRuleRegistry | None = None) -> Policy:
    """The YAML at `path`, or the bundled default policy when None."""
    if path is None:
        bundled = resources.files("services.registry.policy").joinpath("default.yaml")
        with resources.as_file(bundled) as file:
            document = load_yaml_document(file, "bundled registry policy", PolicyError)
        return parse_policy(document, "bundled policy services/registry/policy/default.yaml", registry)
    return parse_policy(load_yaml_document(path, "registry policy", PolicyError), str(path), registry)
