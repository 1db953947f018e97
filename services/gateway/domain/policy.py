"""The gateway's policies: which one governs a request, and what it decides about a prompt and a response.

`PolicySet.load(path)` reads the policy file (services/gateway/config/policies.yaml documents every field);
`for_request(tenant, model)` picks the most specific policy (tenant and model > tenant > model > default;
ties are refused when the file is loaded); `Policy.check_prompt` runs the policy's checks in order and
`check_response` / `response_stream` apply response DLP. Everything is pure except `load`, which reads the
one file through shared/yaml_models (size- and depth-limited); the detection engine is passed in.

Evaluation fails closed: an exception inside any check blocks the request with check "policy_error" and a
reason naming the check and the exception type, never the prompt's text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from services.gateway.domain.checks import DEFAULT_CHECKS, CheckContext, PromptCheck, TokenCounter, estimate_tokens
from services.gateway.domain.dlp import (
    Action,
    Finding,
    TextDetector,
    blocking,
    counts,
    decide,
    merge_counts,
    redact,
)
from services.gateway.domain.holdback import DEFAULT_MAX_TOKEN_CHARS, ResponseStream
from services.gateway.domain.policy_config import (
    DEFAULT_CHECK_ORDER,
    PolicyConfigError,
    PolicySpec,
    parse_policy_specs,
)
from shared.yaml_models import load_yaml_document, parse_yaml

__all__ = [
    "Finding",
    "NoPolicyMatches",
    "Policy",
    "PolicyConfigError",
    "PolicySet",
    "PromptVerdict",
    "ResponseStream",
    "ResponseVerdict",
    "TextDetector",
]

CheckName = Literal["", "dlp", "deny_pattern", "deny_topic", "prompt_injection", "max_input_tokens", "policy_error"]


class NoPolicyMatches(LookupError):
    """No policy governs this tenant and model: the caller must block the request (fail closed)."""


@dataclass(frozen=True)
class PromptVerdict:
    action: Action
    texts: list[str]
    """The prompt's texts, redacted where DLP redacted; the original texts when allowed; empty when blocked."""
    findings: dict[str, int] = field(default_factory=dict)
    """DLP findings per entity type (counts only)."""
    check: str = ""
    """The check that blocked (or "dlp" when it redacted); "" when allowed."""
    reason: str = ""
    """Why, in words fit for the client and the audit log: never the matched personal data."""
    policy: str = ""


@dataclass(frozen=True)
class ResponseVerdict:
    text: str
    """The response, redacted; "" when blocked."""
    findings: dict[str, int] = field(default_factory=dict)
    blocked: bool = False
    reason: str = ""
    policy: str = ""


class Policy:
    """One validated policy with its checks built; evaluation is pure and thread-safe (no state kept)."""

    def __init__(self, spec: PolicySpec, registry: Mapping[str, type[PromptCheck]] = DEFAULT_CHECKS) -> None:
        self.spec = spec
        if spec.checks is not None:
            names = list(spec.checks)
        else:
            names = [n for n in DEFAULT_CHECK_ORDER if n in registry and registry[n].configured(spec)]
            names += [n for n in registry if n not in DEFAULT_CHECK_ORDER and registry[n].configured(spec)]
        self.checks: list[PromptCheck] = [registry[name](spec) for name in names]
        self.prompt_rules = spec.dlp.rules("prompt")
        self.response_rules = spec.dlp.rules("response")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_output_tokens(self) -> int | None:
        return self.spec.max_output_tokens

    @property
    def retain_prompts(self) -> bool:
        return self.spec.retain_prompts

    @property
    def ner(self) -> bool:
        return self.spec.dlp.ner

    def output_token_cap(self, requested: int | None, hard_cap: int) -> int:
        """The max_tokens to generate: the request's, never above the policy's nor the gateway's hard cap."""
        caps = [hard_cap] + [c for c in (self.spec.max_output_tokens, requested) if c is not None]
        return min(caps)

    def check_prompt(
        self,
        texts: list[str],
        detector: TextDetector,
        *,
        count_tokens: TokenCounter = estimate_tokens,
        roles: Sequence[str] | None = None,
    ) -> PromptVerdict:
        """Run the policy's checks over the prompt's texts (a chat's message contents in order, with their
        `roles`; or a completion's prompt). Every text is scanned by DLP and the deny checks; the injection
        heuristics skip the application's own system/developer messages."""
        if roles is not None and len(roles) != len(texts):
            raise ValueError(f"{len(roles)} roles for {len(texts)} texts")
        context = CheckContext(detector, count_tokens, roles)
        current = list(texts)
        findings: dict[str, int] = {}
        redacted_by = ""
        for check in self.checks:
            try:
                outcome = check.check(current, context)
            except Exception as exc:  # fail closed, whatever the check did wrong
                return PromptVerdict(
                    "block", [], findings, "policy_error",
                    f"policy {self.name!r}: check {check.name!r} failed ({type(exc).__name__}); "
                    "the request is blocked because the policy could not be evaluated",
                    self.name,
                )
            findings = {**findings, **outcome.findings}
            if outcome.action == "block":
                return PromptVerdict("block", [], findings, check.name, outcome.reason, self.name)
            if outcome.action == "redact" and outcome.texts is not None:
                current = outcome.texts
                redacted_by = redacted_by or check.name
        if redacted_by:
            listed = ", ".join(f"{entity} ({n})" for entity, n in findings.items())
            return PromptVerdict("redact", current, findings, redacted_by, f"redacted {listed}", self.name)
        return PromptVerdict("allow", current, findings, "", "", self.name)

    def check_stop_sequences(self, stops: Sequence[str], detector: TextDetector) -> PromptVerdict | None:
        """A refusal when a stop sequence holds what the prompt's DLP rules act on, else None. Stop sequences
        reach the model, an upstream provider included, as the client wrote them, and cannot be redacted
        without changing where the answer stops: what the rules would redact in a message, they block here
        (otherwise `stop` would carry personal data past the prompt's DLP)."""
        if not stops:
            return None
        try:
            decided = [decide(found, self.prompt_rules) for found in detector.detect_many(list(stops))]
        except Exception as exc:  # fail closed
            return PromptVerdict("block", [], {}, "policy_error",
                                 f"policy {self.name!r}: the stop sequences could not be checked "
                                 f"({type(exc).__name__}); the request is blocked because the policy could not be "
                                 "evaluated", self.name)
        found = merge_counts(*(counts(d) for d in decided))
        if not found:
            return None
        listed = ", ".join(f"{entity} ({n})" for entity, n in found.items())
        return PromptVerdict("block", [], found, "dlp",
                             f"a stop sequence contains {listed}; stop sequences reach the model unredacted, so "
                             f"policy {self.name!r} refuses them", self.name)

    def check_response(self, text: str, detector: TextDetector) -> ResponseVerdict:
        try:
            decided = decide(detector.detect_many([text])[0], self.response_rules)
        except Exception as exc:  # fail closed
            return ResponseVerdict(
                "", {}, True,
                f"policy {self.name!r}: response check 'dlp' failed ({type(exc).__name__}); the response is withheld",
                self.name,
            )
        found = counts(decided)
        blocked = blocking(decided)
        if blocked:
            reason = f"the response contains {', '.join(blocked)}, which policy {self.name!r} blocks"
            return ResponseVerdict("", found, True, reason, self.name)
        return ResponseVerdict(redact(text, decided), found, False, "", self.name)

    def response_stream(
        self,
        detector: TextDetector,
        holdback_chars: int,
        *,
        context_chars: int | None = None,
        max_token_chars: int = DEFAULT_MAX_TOKEN_CHARS,
    ) -> ResponseStream:
        return ResponseStream(
            self.response_rules,
            detector,
            holdback_chars,
            policy_name=self.name,
            context_chars=context_chars,
            max_token_chars=max_token_chars,
        )


class PolicySet:
    def __init__(self, policies: list[Policy], source: str = "") -> None:
        self.policies = policies
        self.source = source

    @classmethod
    def parse(
        cls, text: str, source: str = "<policies>", *, checks: Mapping[str, type[PromptCheck]] = DEFAULT_CHECKS
    ) -> PolicySet:
        """Policies from YAML text (pure); PolicyConfigError names the source, the policy and the field."""
        try:
            data = parse_yaml(text)
        except yaml.YAMLError as exc:  # syntax errors and the depth / alias limits alike
            raise PolicyConfigError(f"policy file {source}: not valid YAML ({exc})") from None
        return cls.from_data(data, source, checks=checks)

    @classmethod
    def load(cls, path: Path, *, checks: Mapping[str, type[PromptCheck]] = DEFAULT_CHECKS) -> PolicySet:
        """Policies from a YAML file (at most 1 MiB, no aliases); PolicyConfigError on any problem."""
        data = load_yaml_document(Path(path), "policy file", PolicyConfigError)
        return cls.from_data(data, str(path), checks=checks)

    @classmethod
    def from_data(
        cls, data: object, source: str, *, checks: Mapping[str, type[PromptCheck]] = DEFAULT_CHECKS
    ) -> PolicySet:
        specs = parse_policy_specs(data, source, checks)
        return cls([Policy(spec, checks) for spec in specs], source)

    def for_request(self, tenant: str, model: str) -> Policy:
        """The most specific policy matching; NoPolicyMatches when none does (the caller blocks)."""
        candidates = [p for p in self.policies if p.spec.match.matches(tenant, model)]
        if not candidates:
            raise NoPolicyMatches(
                f"no policy in {self.source or 'the policy set'} matches tenant {tenant!r} and model {model!r}; "
                "the request is blocked (add a policy, or a default matching tenants and models '*')"
            )
        # Load-time validation refused ties, so the most specific candidate is unique.
        return max(candidates, key=lambda p: p.spec.match.specificity)

    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def entities(self) -> set[str]:
        """Every entity type some policy names: what the detector must be able to find."""
        return set().union(*(p.spec.dlp.entities for p in self.policies))

    def needs_ner(self) -> bool:
        return any(p.ner for p in self.policies)
