"""Scan policy: per classification and entity type, what happens to a finding of a given score.

A policy is data (YAML); this module validates it and answers one question, `decide(classification,
entity, score)`. Two rules are enforced at load time, not at scan time, so a bad policy never scans:
secrets can never be allowed, and every classification must say what happens to every secret entity."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")


class PolicyError(ValueError):
    pass


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    DROP_RECORD = "drop_record"
    BLOCK_DATASET = "block_dataset"


class Operator(StrEnum):
    REPLACE = "replace"
    MASK = "mask"
    HASH = "hash"


# Severity order: when two rules could apply, the stricter wins; also used to pick a record's outcome.
SEVERITY = {Action.ALLOW: 0, Action.REDACT: 1, Action.DROP_RECORD: 2, Action.BLOCK_DATASET: 3}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="Findings scoring below are ignored.")
    operator: Operator = Operator.REPLACE
    params: dict[str, Any] = Field(default_factory=dict, description="presidio-anonymizer operator params.")


def _as_rule_list(value: Any) -> Any:
    if isinstance(value, dict):
        return [value]
    return value


class ClassificationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: dict[str, list[Rule]] = Field(default_factory=dict)

    @field_validator("rules", mode="before")
    @classmethod
    def _single_or_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {entity: _as_rule_list(rules) for entity, rules in value.items()}
        return value


class Policy(BaseModel):
    """`defaults` apply to every classification; `classifications.<name>.rules` override per entity."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    max_record_chars: int = Field(default=32_000, ge=1)
    secret_entities: list[str] = Field(min_length=1)
    personal_entities: list[str] = Field(default_factory=list)
    defaults: ClassificationPolicy = Field(default_factory=ClassificationPolicy)
    classifications: dict[str, ClassificationPolicy] = Field(default_factory=dict)

    @field_validator("classifications")
    @classmethod
    def _known_classifications(cls, value: dict[str, ClassificationPolicy]) -> dict[str, ClassificationPolicy]:
        unknown = sorted(set(value) - set(CLASSIFICATIONS))
        if unknown:
            raise ValueError(f"unknown classification(s) {unknown}; expected {list(CLASSIFICATIONS)}")
        return value

    @model_validator(mode="after")
    def _secrets_never_pass(self) -> Policy:
        problems: list[str] = []
        for classification in CLASSIFICATIONS:
            for entity in self.secret_entities:
                rules = self.rules_for(classification, entity)
                where = f"classifications.{classification} / {entity}"
                if not rules:
                    problems.append(f"{where}: secret entity has no rule (secrets must be redacted or blocked)")
                for rule in rules:
                    if rule.action == Action.ALLOW:
                        problems.append(f"{where}: secrets may never be allowed (action allow)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rules_for(self, classification: str, entity: str) -> list[Rule]:
        override = self.classifications.get(classification)
        if override is not None and entity in override.rules:
            return override.rules[entity]
        return self.defaults.rules.get(entity, [])

    def entities(self) -> set[str]:
        names = set(self.defaults.rules)
        for override in self.classifications.values():
            names |= set(override.rules)
        return names

    def min_score(self, classification: str, entity: str) -> float | None:
        rules = self.rules_for(classification, entity)
        return min((r.min_score for r in rules), default=None)

    def floors(self, classification: str) -> dict[str, float]:
        """Entity -> lowest min_score under this classification: what detection must compute at all."""
        return {e: s for e in self.entities() if (s := self.min_score(classification, e)) is not None}

    def decide(self, classification: str, entity: str, score: float) -> Rule | None:
        """The rule for this finding: the one with the highest min_score not above `score`; ties -> stricter.

        None means the entity is not governed by this policy or scored below every threshold."""
        if classification not in CLASSIFICATIONS:
            raise PolicyError(f"classification {classification!r} is not one of {list(CLASSIFICATIONS)}")
        applicable = [r for r in self.rules_for(classification, entity) if score >= r.min_score]
        if not applicable:
            return None
        return max(applicable, key=lambda r: (r.min_score, SEVERITY[r.action]))

    def is_personal(self, entity: str) -> bool:
        return entity in self.personal_entities
