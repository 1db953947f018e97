"""The gateway's policy file as pydantic models: what each policy may say, validated strictly at load.

A file is `policies:`, a list; each policy has a `name`, a `match` (tenants and models, a list or "*") and
its settings. `extends: <name>` takes every setting the policy does not state from another policy (nested
mappings merged key by key, lists replaced), so a tenant policy can tighten one rule without restating
the rest. Unknown keys are errors; so are invalid regular expressions, unknown entity keys' shapes and
unknown checks, each reported with the file, the policy and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.gateway.domain.dlp import DEFAULT_KEY, Action, DlpRules
from shared.validation import describe_validation_error, dotted

ENTITY_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
DEFAULT_CHECK_ORDER = ("max_input_tokens", "deny_pattern", "deny_topic", "prompt_injection", "dlp")
"""The order checks run in when a policy does not list them: cheap and blocking first, DLP (which may
redact) last, so a blocked prompt is never scanned for nothing."""
MAX_PATTERN_CHARS = 1_000


class PolicyConfigError(ValueError):
    """The policy file is unusable; the message names the file, the policy and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Which requests a policy governs: "*" (any) or a list of names, for tenants and for models."""

    tenants: list[str] | Literal["*"] = "*"
    models: list[str] | Literal["*"] = "*"

    @field_validator("tenants", "models")
    @classmethod
    def _non_empty(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            if not value:
                raise ValueError('an empty list matches nothing: list names or write "*"')
            if any(not name for name in value):
                raise ValueError("names may not be empty")
        return value

    @property
    def specificity(self) -> int:
        """3 = tenant and model named, 2 = tenant only, 1 = model only, 0 = the default."""
        return (2 if self.tenants != "*" else 0) + (1 if self.models != "*" else 0)

    def matches(self, tenant: str, model: str) -> bool:
        return (self.tenants == "*" or tenant in self.tenants) and (self.models == "*" or model in self.models)

    def overlap(self, other: Match) -> tuple[str, str] | None:
        """A (tenant, model) both match, if any ("*" where either side is any)."""
        tenants = _common(self.tenants, other.tenants)
        models = _common(self.models, other.models)
        return None if tenants is None or models is None else (tenants, models)


def _common(a: list[str] | str, b: list[str] | str) -> str | None:
    if a == "*" and b == "*":
        return "*"
    if a == "*":
        return sorted(b)[0]
    if b == "*":
        return sorted(a)[0]
    both = sorted(set(a) & set(b))
    return both[0] if both else None


class DlpSide(_Strict):
    """`{ENTITY_TYPE: allow|redact|block, ..., default: allow|redact|block}` for prompts or responses."""

    actions: dict[str, Action] = Field(default_factory=dict)
    default: Action = "allow"

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        # The YAML is a flat mapping; `default` is one key among the entity types.
        if not isinstance(value, Mapping):
            return value
        actions = {k: v for k, v in value.items() if k != DEFAULT_KEY}
        out: dict[str, Any] = {"actions": actions}
        if DEFAULT_KEY in value:
            out["default"] = value[DEFAULT_KEY]
        return out

    @field_validator("actions")
    @classmethod
    def _entity_names(cls, value: dict[str, Action]) -> dict[str, Action]:
        bad = sorted(k for k in value if not ENTITY_KEY.match(k))
        if bad:
            raise ValueError(f"entity types are UPPER_SNAKE_CASE like EMAIL_ADDRESS (or the key 'default'); got {bad}")
        return value


class DlpSettings(_Strict):
    prompt: DlpSide = Field(default_factory=DlpSide)
    response: DlpSide = Field(default_factory=DlpSide)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    ner: bool = True

    def rules(self, side: Literal["prompt", "response"]) -> DlpRules:
        chosen = self.prompt if side == "prompt" else self.response
        return DlpRules(chosen.actions, chosen.default, self.min_score)

    @property
    def entities(self) -> set[str]:
        return set(self.prompt.actions) | set(self.response.actions)


class PromptInjectionSettings(_Strict):
    enabled: bool = True
    threshold: float = Field(default=0.5, gt=0.0, le=1.0, description="Block at or above this score (0..1).")


class PolicySpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    match: Match
    extends: str | None = None
    checks: list[str] | None = Field(default=None, description="Checks to run, in order; default: all configured.")
    dlp: DlpSettings = Field(default_factory=DlpSettings)
    deny_patterns: list[str] = Field(default_factory=list)
    deny_topics: dict[str, list[str]] = Field(default_factory=dict)
    prompt_injection: PromptInjectionSettings = Field(default_factory=PromptInjectionSettings)
    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    retain_prompts: bool = False

    @field_validator("deny_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            if len(pattern) > MAX_PATTERN_CHARS:
                raise ValueError(f"pattern {index} is over {MAX_PATTERN_CHARS} characters")
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"pattern {index} {pattern!r} is not a valid regular expression ({exc})") from None
        return value

    @field_validator("deny_topics")
    @classmethod
    def _topics_have_phrases(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for topic, phrases in value.items():
            if not phrases or any(not p.strip() for p in phrases):
                raise ValueError(f"topic {topic!r} needs a list of non-empty keywords or phrases")
        return value

    @property
    def compiled_deny_patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.deny_patterns]


class PolicyFileShape(_Strict):
    """The top level only; each policy is validated on its own so errors can name it."""

    policies: list[dict[str, Any]] = Field(min_length=1)


def merge_settings(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """`child` over `parent`: mappings merged key by key, anything else (lists included) replaced."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


NOT_INHERITED = ("name", "match", "extends", "description")


def resolve_extends(raw: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Each raw policy with what it `extends` merged in (chains followed, cycles and unknown names refused)."""
    by_name = {p.get("name"): p for p in raw if isinstance(p.get("name"), str)}
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(policy: dict[str, Any], chain: tuple[str, ...]) -> dict[str, Any]:
        name = policy.get("name")
        parent_name = policy.get("extends")
        if parent_name is None:
            return policy
        where = f"policy file {source}: policy {name!r}: extends"
        if not isinstance(parent_name, str) or parent_name not in by_name:
            raise PolicyConfigError(f"{where}: no policy named {parent_name!r} (known: {sorted(by_name)})")
        if parent_name in chain:
            raise PolicyConfigError(f"{where}: cycle {' -> '.join((*chain, parent_name))}")
        if parent_name not in resolved:
            resolved[parent_name] = resolve(by_name[parent_name], (*chain, parent_name))
        inherited = {k: v for k, v in resolved[parent_name].items() if k not in NOT_INHERITED}
        return merge_settings(inherited, policy)

    return [resolve(p, (str(p.get("name")),)) for p in raw]


def parse_policy_specs(data: Any, source: str, known_checks: Mapping[str, object]) -> list[PolicySpec]:
    """Validated policies from a parsed YAML document, or PolicyConfigError naming file, policy and field."""
    prefix = f"policy file {source}"
    if not isinstance(data, Mapping):
        raise PolicyConfigError(f"{prefix}: expected a mapping with a 'policies' list at the top level")
    try:
        shape = PolicyFileShape.model_validate(data)
    except ValidationError as exc:
        raise PolicyConfigError(f"{prefix}: {describe_validation_error(exc)}") from None
    names: dict[str, int] = {}
    for index, raw in enumerate(shape.policies):
        name = raw.get("name")
        if isinstance(name, str) and name in names:
            raise PolicyConfigError(
                f"{prefix}: policies[{index}]: the name {name!r} is used by policies[{names[name]}] too"
            )
        if isinstance(name, str):
            names[name] = index
    specs = []
    for index, raw in enumerate(resolve_extends(shape.policies, source)):
        label = f"{prefix}: policy {raw.get('name')!r} (policies[{index}])"
        try:
            spec = PolicySpec.model_validate(raw)
        except ValidationError as exc:
            raise PolicyConfigError(f"{label}: {describe_validation_error(exc, location=_yaml_location)}") from None
        unknown = [c for c in spec.checks or () if c not in known_checks]
        if unknown:
            raise PolicyConfigError(f"{label}: checks: unknown check(s) {unknown} (known: {sorted(known_checks)})")
        specs.append(spec)
    _refuse_ties(specs, prefix)
    return specs


def _yaml_location(loc: Sequence[Any]) -> str:
    """The field as the YAML spells it: a DLP side's entity rules sit directly under `prompt`/`response`."""
    return dotted([part for part in loc if part != "actions"])


def _refuse_ties(specs: list[PolicySpec], prefix: str) -> None:
    """Two policies equally specific that can match the same request would make the choice arbitrary."""
    for i, a in enumerate(specs):
        for b in specs[i + 1 :]:
            if a.match.specificity != b.match.specificity:
                continue
            both = a.match.overlap(b.match)
            if both is not None:
                raise PolicyConfigError(
                    f"{prefix}: policies {a.name!r} and {b.name!r} both match tenant {both[0]!r}, model {both[1]!r} "
                    "equally specifically; narrow one of them so every request has one most specific policy"
                )
