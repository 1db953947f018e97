"""Rule-based rewards an RLHF job declares (shared/events/reinforcement.py), each scoring a completion's text
in [0, 1]: the trainer optimises them, the evaluator's reward_hacking suite scores policies with them. Pure:
jsonschema validates in memory and, without a registry, never retrieves a remote $ref."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jsonschema import Draft202012Validator

from shared.events.reinforcement import RewardFunctionSpec, RlhfOptions
from shared.json_input import parse_json

Scorer = Callable[[str], float]


def completion_text(completion: Any) -> str:
    """TRL hands conversational completions as message lists and plain ones as strings."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content") or "") for message in completion)


def json_schema_reward(schema: dict[str, Any]) -> Scorer:
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    def score(text: str) -> float:
        try:
            value = parse_json(text.strip())
        except ValueError:
            return 0.0
        return 1.0 if validator.is_valid(value) else 0.5

    return score


def length_reward(target_chars: int) -> Scorer:
    def score(text: str) -> float:
        return max(0.0, 1.0 - abs(len(text) - target_chars) / target_chars)

    return score


def keywords_reward(keywords: Sequence[str]) -> Scorer:
    wanted = [k.lower() for k in keywords if k.strip()]

    def score(text: str) -> float:
        lowered = text.lower()
        return sum(k in lowered for k in wanted) / len(wanted)

    return score


def scorer_for(spec: RewardFunctionSpec) -> Scorer:
    if spec.kind == "json_schema":
        return json_schema_reward(spec.json_schema or {})
    if spec.kind == "length":
        return length_reward(spec.target_chars or 1)
    return keywords_reward(spec.keywords)


def rule_reward_name(index: int, spec: RewardFunctionSpec) -> str:
    return f"rule_{index}_{spec.kind}"


def rule_rewards(options: RlhfOptions) -> list[tuple[str, float, Scorer]]:
    """(name, weight, scorer) of each declared rule, in the order declared."""
    return [(rule_reward_name(i, spec), spec.weight, scorer_for(spec))
            for i, spec in enumerate(options.reward_functions)]
