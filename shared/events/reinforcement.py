"""What an RLHF job declares beside its method: the algorithm, where the policy starts (the base or an approved
SFT version), what scores the policy's samples (an approved reward-model version and/or rule-based reward
functions, each reviewed at approval like code) and the bound on the policy's KL divergence from its starting
point. Kept out of payloads.py, which imports it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.ids import VERSION_ID_PATTERN

MAX_REWARD_FUNCTIONS = 10
MAX_KEYWORDS = 50
MAX_SCHEMA_KEYS = 200

RewardFunctionKind = Literal["json_schema", "length", "keywords"]
# The options each kind of reward function takes; any other option set for it is refused by name.
REWARD_FUNCTION_OPTIONS: dict[str, frozenset[str]] = {
    "json_schema": frozenset({"json_schema"}),
    "length": frozenset({"target_chars"}),
    "keywords": frozenset({"keywords"}),
}


def _count_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count_keys(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_keys(v) for v in value)
    return 0


class RewardFunctionSpec(BaseModel):
    """One rule-based reward, scoring a completion in [0, 1]: json_schema (1 when the completion is a JSON
    document valid against the schema, 0.5 when it is JSON that fails it), length (1 at target_chars, falling
    linearly to 0 at twice or zero length), keywords (the fraction of the keywords the completion contains)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RewardFunctionKind
    weight: float = Field(default=1.0, gt=0, le=100)
    json_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema (Draft 2020-12).")
    target_chars: int | None = Field(default=None, ge=1, le=100_000)
    keywords: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> RewardFunctionSpec:
        # Set means a value (not None, not empty): a serialised spec carries every field, unset ones as null.
        given = {name for name in ("json_schema", "target_chars", "keywords") if getattr(self, name)}
        if stray := sorted(given - REWARD_FUNCTION_OPTIONS[self.kind]):
            raise ValueError(f"reward function {self.kind}: {', '.join(stray)} does not apply to it")
        if self.kind == "json_schema" and not self.json_schema:
            raise ValueError("reward function json_schema: needs json_schema")
        if self.json_schema and _count_keys(self.json_schema) > MAX_SCHEMA_KEYS:
            raise ValueError(f"reward function json_schema: the schema has more than {MAX_SCHEMA_KEYS} keys")
        if self.kind == "length" and self.target_chars is None:
            raise ValueError("reward function length: needs target_chars")
        if self.kind == "keywords" and not [k for k in self.keywords if k.strip()]:
            raise ValueError("reward function keywords: needs at least one non-empty keyword")
        return self


class RlhfOptions(BaseModel):
    """method.rlhf of a job whose method.kind is rlhf."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["grpo", "rloo"] = "grpo"
    reward_model_version: str | None = Field(
        default=None, pattern=VERSION_ID_PATTERN, description="An approved reward_model version (NAME.vN)."
    )
    policy_version: str | None = Field(
        default=None, pattern=VERSION_ID_PATTERN,
        description="The policy starts from this approved LoRA SFT version (NAME.vN) on the job's base: its "
        "adapter is trained on, and the KL is measured to it. None: the policy starts from the base.",
    )
    reward_functions: list[RewardFunctionSpec] = Field(default_factory=list, max_length=MAX_REWARD_FUNCTIONS)
    kl_bound: float = Field(default=1.0, gt=0, le=100, description="Largest mean KL to the starting policy.")
    on_kl_exceeded: Literal["fail", "stop"] = Field(
        default="fail", description="fail: the job fails; stop: training stops and keeps the last step's policy."
    )
    num_generations: int = Field(default=4, ge=2, le=64, description="Samples per prompt (the group).")
    max_completion_tokens: int = Field(default=32, ge=1, le=4096)
    temperature: float = Field(default=1.0, gt=0, le=2.0)

    @model_validator(mode="after")
    def _something_scores(self) -> RlhfOptions:
        if self.reward_model_version is None and not self.reward_functions:
            raise ValueError("method.rlhf: give reward_model_version, reward_functions or both")
        return self
