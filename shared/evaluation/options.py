"""A job's evaluation options (`evaluation:` in a job spec), carried from the job request to the evaluator.

Canary values never appear here or in any event: only their shape and count. The values are derived from
a deployment secret (shared/evaluation/canaries.py), so only the scanner, which plants them, and the
evaluator, which measures them, can know them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SCHEMA_CHARS = 16_000
CanaryShapeName = Literal["api_key", "pin", "passphrase"]


class CanarySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=8, ge=1, le=64, description="Distinct canaries planted.")
    repeats: int = Field(default=4, ge=1, le=100, description="Copies of each canary in the training data.")
    shape: CanaryShapeName = Field(
        default="api_key",
        description="api_key looks like a secret (the scanner redacts it); pin and passphrase do not, so they "
                    "measure the training run's own memorisation.",
    )


class EvaluationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    canaries: CanarySpec | None = None
    holdout_fraction: float = Field(
        default=0.1, ge=0.0, le=0.5,
        description="Share of records the trainer keeps out of training for the task-quality suite.",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema every model output should satisfy (task-quality suite)."
    )
    suites: list[str] | None = Field(
        default=None, max_length=20, description="Suites to run; the evaluator's configured set when absent."
    )

    @field_validator("output_schema")
    @classmethod
    def _schema_is_small_and_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        import json

        if len(json.dumps(value)) > MAX_SCHEMA_CHARS:
            raise ValueError(f"output_schema is over {MAX_SCHEMA_CHARS} characters")
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"output_schema is not a valid JSON Schema: {exc.message}") from None
        return value
