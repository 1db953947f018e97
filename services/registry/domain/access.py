"""Who may do what: decided once, here, for the HTTP API and for signed submissions alike.

No credential, an unknown one or a revoked principal is 401 (`Unauthenticated`) everywhere; a known,
active principal without a role the action needs is 403 (`Forbidden`)."""

from __future__ import annotations

from services.registry.domain.errors import Forbidden, Unauthenticated
from services.registry.domain.principals import Principal

READ_JOBS = ("auditor", "admin", "approver")
SUBMIT = ("requester", "admin")
DECIDE = ("approver",)
ADMINISTER = ("admin",)
READ_PRINCIPALS = ("auditor", "admin")
REQUEST_EVALUATION = ("requester", "approver", "admin")
READ_MODELS = ("auditor", "admin", "approver", "deployer")
"""Who reads every model version; a requester reads the versions of its own jobs."""
DEPLOY = ("deployer",)
RETIRE = ("deployer", "admin")
MANAGE_API_KEYS = ("admin",)
"""Gateway API keys are credentials: only admins create, rotate and revoke them."""
READ_API_KEYS = ("auditor", "admin")
ERASE = ("admin",)
"""Who may request a data subject's erasure (GDPR Art. 17): it retires deployed versions at once."""
READ_ERASURES = ("auditor", "admin")
MANAGE_INCIDENTS = ("approver", "admin")
"""Incidents (EU AI Act Art. 73) are opened, updated and closed by the people who govern releases."""
READ_INCIDENTS = ("auditor", "admin", "approver", "deployer")
READ_EVIDENCE = READ_MODELS
"""An evidence pack names every version's approvals, incidents and audit entries: readers of every version."""
READ_LEDGER = ("auditor", "admin")
"""Who browses the audit ledger in the console (entries carry actors, subjects and types, never payloads)."""


def authorise(principal: Principal | None, allowed: tuple[str, ...], action: str) -> Principal:
    """The principal if it may `action` with one of the `allowed` roles; raises otherwise."""
    if principal is None:
        raise Unauthenticated("token not recognised (wrong, or never issued)")
    if principal.revoked_at is not None:
        raise Unauthenticated(f"token of principal {principal.name!r} was revoked")
    if not principal.has_any_role(allowed):
        needed = (
            f"the '{allowed[0]}' role"
            if len(allowed) == 1
            else "one of the roles " + ", ".join(f"'{role}'" for role in allowed)
        )
        raise Forbidden(
            f"principal {principal.name!r} has roles [{', '.join(principal.roles)}]; {action} needs {needed}"
        )
    return principal


def reads_every_job(principal: Principal) -> bool:
    """Auditors, admins and approvers read every job; a requester reads only the jobs it requested."""
    return principal.has_any_role(READ_JOBS)


def check_reads_job(principal: Principal, job_id: str, requester: str) -> None:
    if not reads_every_job(principal) and principal.name != requester:
        raise Forbidden(
            f"job {job_id} exists and was requested by another principal; {principal.name!r} may read only its own"
        )


def check_reads_version(principal: Principal, version_id: str, requester: str) -> None:
    if not principal.has_any_role(READ_MODELS) and principal.name != requester:
        raise Forbidden(
            f"model version {version_id} was trained for another principal's job; {principal.name!r} may read only "
            "versions of its own jobs"
        )


def check_requests_evaluation(principal: Principal, job_id: str, requester: str) -> None:
    """Approvers and admins may ask any trained job to be evaluated again; a requester only its own job."""
    if principal.has_any_role(("approver", "admin")) or principal.name == requester:
        return
    raise Forbidden(
        f"principal {principal.name!r} may not ask for an evaluation of job {job_id}: only its requester, an "
        "approver or an admin may"
    )
