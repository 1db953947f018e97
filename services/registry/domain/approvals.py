"""The approval rules of the registry, one copy for jobs and model versions alike.

- Only principals with the `approver` role decide.
- Separation of duties: whoever requested the job never approves it, nor any model trained from it.
- One decision per approver per subject; approvals count by distinct approver, and the risk tier's count
  (policy `approvals`) of distinct approvers is needed (two for high-risk by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.registry.domain.errors import Conflict, Forbidden
from services.registry.domain.principals import Principal

APPROVER_ROLE = "approver"
Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class Approval:
    approver: str
    decision: Decision
    comment: str
    reason: str
    override: bool
    at: datetime


def check_decider(approver: Principal, decision: Decision, *, subject: str, requester: str) -> None:
    """Refuse a decision by a principal that is not an approver, or an approval by the subject's requester."""
    if APPROVER_ROLE not in approver.roles:
        raise Forbidden(
            f"principal {approver.name!r} has roles [{', '.join(approver.roles)}]; deciding on {subject} needs "
            f"the '{APPROVER_ROLE}' role"
        )
    if decision == "approve" and approver.name == requester:
        raise Forbidden(f"separation of duties: {approver.name!r} requested {subject} and cannot approve it")


def check_first_decision(approvals: Sequence[Approval], approver: str, *, subject: str) -> None:
    previous = [a for a in approvals if a.approver == approver]
    if previous:
        raise Conflict(f"{approver!r} already decided on {subject} ({previous[0].decision}); one decision each")


def approvers(approvals: Sequence[Approval]) -> list[str]:
    """Distinct approvers, in the order they approved."""
    names: list[str] = []
    for approval in approvals:
        if approval.decision == "approve" and approval.approver not in names:
            names.append(approval.approver)
    return names
