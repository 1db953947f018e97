"""Reading the registry policy: the YAML named by settings, or the bundled default."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from services.registry.domain.policy import Policy, PolicyError, RiskRuleRegistry, parse_policy
from shared.yaml_models import parse_yaml, read_limited_text


def load_policy(path: Path | None = None, registry: RiskRuleRegistry | None = None) -> Policy:
    """The YAML at `path`, or the bundled default policy when None."""
    if path is None:
        text = resources.files("services.registry.policy").joinpath("default.yaml").read_text("utf-8")
        source = "bundled policy services/registry/policy/default.yaml"
    else:
        try:
            text = read_limited_text(path)
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read registry policy: {exc.strerror or exc}") from None
        except ValueError as exc:  # too large, not a regular file, not UTF-8
            raise PolicyError(f"{path}: cannot read registry policy: {exc}") from None
        source = str(path)
    try:
        document = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    return parse_policy(document, source, registry)
