"""The decommissioning plan a job carries from intake to its model versions (its own module: the job
specification in payloads.py and the model events in model_versions.py both need it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_PLAN_TEXT = 2_000


class DecommissioningPlan(BaseModel):
    """Required at intake, so every registered version has one: who owns the model, what makes it retrain,
    how the version it replaces is retired, how long its audit trail is kept and when it is reviewed."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=200, description="The accountable team or person.")
    retraining_trigger: str = Field(min_length=1, max_length=MAX_PLAN_TEXT)
    previous_version_retirement: str = Field(
        min_length=1, max_length=MAX_PLAN_TEXT, description="How the version this one replaces is retired."
    )
    audit_retention_days: int = Field(ge=1, le=36_500, description="How long the audit trail is kept.")
    review_after_days: int = Field(
        default=180, ge=1, le=1_825, description="A version not reviewed by then is flagged as overdue."
    )
