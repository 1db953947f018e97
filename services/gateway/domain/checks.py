"""Prompt checks, registered by name (the shape of Presidio's recognizer registry): each is a small class
built from one policy's settings, and a policy lists which run (`checks:`, default: every configured one,
in DEFAULT_CHECK_ORDER). A new check is a subclass of `PromptCheck` added to the mapping given to
`PolicySet.load(..., checks=...)`; nothing global is modified.

A check sees the prompt's texts (the messages' contents, in order) and returns an outcome: allow, redact
(with the new texts) or block (with a reason that never quotes the prompt)."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from services.gateway.domain.dlp import Action, TextDetector, blocking, counts, decide, merge_counts, redact
from services.gateway.domain.injection import score_injection
from services.gateway.domain.policy_config import PolicySpec

TokenCounter = Callable[[str], int]


_PIECE = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Tokens of `text` without a tokenizer: the larger of a chars/4 estimate (BPE on English prose) and the
    count of words and punctuation marks (code, numbers and non-Latin text tokenise finer). The gateway
    passes the served model's own tokenizer count where it has one."""
    pieces = len(_PIECE.findall(text))
    return max(math.ceil(len(text) / 4), pieces)


def overran(estimated_tokens: int, max_tokens: int) -> bool:
    """Whether an answer the gateway estimates at `estimated_tokens` clearly ran past the `max_tokens` it was
    asked for and reserved: by more than the estimate's own error (it counts code and numbers finer than
    BPE does), so an upstream that honours max_tokens is never cut, and one that ignores it is."""
    return estimated_tokens > 2 * max_tokens + 16


def cut_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text`, ending after a word or mark, that `estimate_tokens` counts at most
    `max_tokens`."""
    if estimate_tokens(text) <= max_tokens:
        return text
    end = 0
    for count, piece in enumerate(_PIECE.finditer(text)):
        if count == max_tokens:
            break
        if piece.end() > 4 * max_tokens:  # past the chars allowed: cut inside a word only if none fits whole
            end = end or 4 * max_tokens
            break
        end = piece.end()
    return text[:end]


OPERATOR_ROLES = frozenset({"system", "developer"})
"""Message roles the calling application writes (its instructions), as opposed to its end users' turns."""


@dataclass(frozen=True)
class CheckContext:
    detector: TextDetector
    count_tokens: TokenCounter = estimate_tokens
    roles: Sequence[str] | None = None
    """The role of each text ("system", "user", ...), when the prompt is a chat; None for a plain completion."""

    def from_operator(self, index: int) -> bool:
        return self.roles is not None and index < len(self.roles) and self.roles[index] in OPERATOR_ROLES


@dataclass(frozen=True)
class CheckOutcome:
    action: Action = "allow"
    texts: list[str] | None = None
    """The redacted texts when action is redact."""
    findings: dict[str, int] = field(default_factory=dict)
    reason: str = ""


ALLOW = CheckOutcome()


class PromptCheck(ABC):
    name: ClassVar[str]

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        """Whether the policy configures this check at all (when the policy does not list its checks)."""
        return True

    @abstractmethod
    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome: ...


class MaxInputTokens(PromptCheck):
    name = "max_input_tokens"

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        return spec.max_input_tokens is not None

    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome:
        limit = self.spec.max_input_tokens
        if limit is None:
            return ALLOW
        total = sum(context.count_tokens(text) for text in texts)
        if total > limit:
            return CheckOutcome("block", reason=f"the prompt has {total} tokens, over the policy's limit of {limit}")
        return ALLOW


class DenyPatterns(PromptCheck):
    name = "deny_pattern"

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.patterns = spec.compiled_deny_patterns

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        return bool(spec.deny_patterns)

    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome:
        for index, pattern in enumerate(self.patterns):
            if any(pattern.search(text) for text in texts):
                # The pattern's index, not the matched text: the match may be personal data.
                reason = f"the prompt matches deny pattern {index} of policy {self.spec.name!r}"
                return CheckOutcome("block", reason=reason)
        return ALLOW


class DenyTopics(PromptCheck):
    """A topic is a list of keywords or phrases, matched as whole words, case-insensitively, with any
    whitespace between a phrase's words."""

    name = "deny_topic"

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.topics = {
            topic: re.compile(
                r"(?<!\w)(?:" + "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases) + r")(?!\w)",
                re.IGNORECASE,
            )
            for topic, phrases in spec.deny_topics.items()
        }

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        return bool(spec.deny_topics)

    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome:
        for topic, pattern in self.topics.items():
            if any(pattern.search(text) for text in texts):
                reason = f"the prompt is about {topic!r}, a topic policy {self.spec.name!r} denies"
                return CheckOutcome("block", reason=reason)
        return ALLOW


class PromptInjection(PromptCheck):
    name = "prompt_injection"

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        return spec.prompt_injection.enabled

    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome:
        settings = self.spec.prompt_injection
        if not settings.enabled:
            return ALLOW
        # An application's own system prompt says "never reveal your instructions", "start your reply with":
        # the attack shapes, as rules. Injection comes through the turns its users write (and what they paste).
        for index, text in enumerate(texts):
            if context.from_operator(index):
                continue
            result = score_injection(text)
            if result.score >= settings.threshold:
                return CheckOutcome(
                    "block",
                    reason=f"the prompt looks like a prompt-injection or jailbreak attempt (score {result.score:.2f} "
                    f">= {settings.threshold:.2f}; signals: {', '.join(result.signals)})",
                )
        return ALLOW


class Dlp(PromptCheck):
    name = "dlp"

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__(spec)
        self.rules = spec.dlp.rules("prompt")

    @classmethod
    def configured(cls, spec: PolicySpec) -> bool:
        return bool(spec.dlp.prompt.actions) or spec.dlp.prompt.default != "allow"

    def check(self, texts: list[str], context: CheckContext) -> CheckOutcome:
        per_text = context.detector.detect_many(texts)
        decided = [decide(findings, self.rules) for findings in per_text]
        found = merge_counts(*(counts(d) for d in decided))
        blocked = sorted({entity for d in decided for entity in blocking(d)})
        if blocked:
            listed = ", ".join(f"{entity} ({found[entity]})" for entity in blocked)
            return CheckOutcome("block", findings=found,
                                reason=f"the prompt contains {listed}, which policy {self.spec.name!r} blocks")
        if not found:
            return ALLOW
        return CheckOutcome("redact", texts=[redact(t, d) for t, d in zip(texts, decided, strict=True)], findings=found)


DEFAULT_CHECKS: Mapping[str, type[PromptCheck]] = MappingProxyType(
    {cls.name: cls for cls in (MaxInputTokens, DenyPatterns, DenyTopics, PromptInjection, Dlp)}
)
"""The built-in checks by name; read-only: pass an extended mapping to PolicySet.load to add one."""
