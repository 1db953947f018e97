"""`tunegate`: one command line for every service's verbs.

An operator's CLI should answer at once, and the services' modules are heavy (Presidio, torch, SQLAlchemy,
FastStream), so this module imports none of them. `VERBS` says, for every verb, which object implements
it ("module:attr": a command function or a Typer sub-app) and the one line `tunegate --help` shows for it;
a verb's module is imported only when that verb is run or asked for its own help. A key with a space
("jobs watch") mounts a command from one module inside another module's group. Each service's
`register(app)` still declares the verbs it owns; a test checks that this table lists exactly those."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Verb:
    target: str  # "package.module:attr"
    help: str  # the first paragraph of the verb's own help, as listed by the parent's --help


VERBS: dict[str, Verb] = {
    "up": Verb(
        "services.cli.stack:up", "Start Redis (unless TUNEGATE_REDIS_URL is set) and every service in the background."
    ),
    "down": Verb("services.cli.stack:down", "Stop exactly the processes `tunegate up` started."),
    "status": Verb(
        "services.cli.stack:status",
        "Liveness, consumer lag and dead-letter counts of every service, model versions past their review date, "
        "and open incidents (with those past their Art. 73 reporting deadline). Exit 1 when Redis is unreachable, "
        "or a service that `tunegate up` started is dead, not ready or cannot reach Redis.",
    ),
    "submit": Verb(
        "services.registry.entrypoints.cli:submit",
        "Validate a job file, sign job.requested as the principal and publish it; prints the job id.",
    ),
    "approve": Verb(
        "services.registry.entrypoints.cli:approve",
        "Approve a job awaiting approval (training starts once enough distinct approvers agreed).",
    ),
    "reject": Verb("services.registry.entrypoints.cli:reject", "Reject a job awaiting approval, with a reason."),
    "advise": Verb(
        "services.registry.entrypoints.cli:advise_cmd",
        "Fine-tune or RAG? Answers the decision matrix without submitting a job.",
    ),
    "scan": Verb(
        "services.scanner.entrypoints.cli:scan",
        "Scan a dataset for personal data, health identifiers and secrets; exit 1 if it would be blocked.",
    ),
    "demo-dataset": Verb(
        "services.scanner.entrypoints.cli:demo_dataset",
        "Write the demo dataset: order-extraction chats with planted emails, phones, a card and an AWS key; or, "
        "with --preferences, rated reply pairs on that task.",
    ),
    "demo": Verb("services.cli.demo:demo", "Run the whole path of one job end to end on embedded defaults."),
    "audit": Verb("services.audit.entrypoints.cli:audit_app", "The audit ledger: verify it, export and check proofs."),
    "jobs": Verb("services.registry.entrypoints.cli:jobs_app", "Fine-tuning jobs held by the registry."),
    "eval": Verb(
        "services.registry.entrypoints.eval_cli:eval_app",
        "Evaluations of trained jobs: run them again, show the release gate's verdict and the reports.",
    ),
    "jobs watch": Verb(
        "services.trainer.entrypoints.cli:jobs_watch",
        "Follow a training job live: progress bar with loss and ETA until it completes, fails or is cancelled.",
    ),
    "principals": Verb(
        "services.registry.entrypoints.principals_cli:principals_app",
        "Principals (requester, approver, deployer, auditor, admin): created, rotated and revoked through the "
        "registry API with an admin token; every change is an audited event.",
    ),
    "admin": Verb("services.registry.entrypoints.principals_cli:admin_app", "The first admin of a fresh registry."),
    "verify-response": Verb(
        "services.gateway.entrypoints.cli:verify_response",
        "Check a gateway response's signed provenance and, with --base, its text watermark; exit 1 if a check fails.",
    ),
    "keys": Verb(
        "services.registry.entrypoints.api_keys_cli:api_keys_app",
        "Gateway API keys (scoped to a tenant and models, with request and token budgets): created, rotated "
        "and revoked through the registry API with an admin token; every change is an audited event.",
    ),
    "signing-keys": Verb(
        "services.cli.signing_keys:signing_keys_app",
        "Event-signing keys of the services: list, rotate (the old key stays trusted for events in flight), retire "
        "(an old key, to lock it out).",
    ),
    "secrets": Verb(
        "services.cli.secrets:secrets_app",
        "Secrets for a compose or Kubernetes deployment: Redis users, passwords, service signing keys.",
    ),
    "models": Verb(
        "services.registry.entrypoints.models_cli:models_app",
        "Model versions: list, show (with the AIBOM), approve, deploy under an alias, retire, roll back; base models.",
    ),
    "erase": Verb(
        "services.registry.entrypoints.erasure_cli:erase",
        "Erase a data subject (GDPR Art. 17) through lineage: retire, retrain, certify.",
    ),
    "erasure": Verb(
        "services.registry.entrypoints.erasure_cli:erasure_app",
        "Erasures of data subjects (GDPR Art. 17): list, show step by step, write and verify certificates.",
    ),
    "incidents": Verb(
        "services.registry.entrypoints.incidents_cli:incidents_app",
        "Incidents involving model versions (EU AI Act Art. 73): opened, updated, reported and closed through "
        "the registry API, each change an audited event; the reporting deadline follows from the severity.",
    ),
    "report": Verb(
        "services.registry.entrypoints.evidence_cli:report",
        "Write a model version's compliance evidence pack (evidence.json, evidence.html): EU AI Act, NIST AI RMF "
        "and ISO/IEC 42001 obligations, each evidenced, partly evidenced or a gap.",
    ),
}


def load_command(name: str, target: str) -> Any:
    """The click command of one verb, built by Typer exactly as `app.command`/`app.add_typer` would."""
    module_name, _, attr = target.partition(":")
    implementation = getattr(importlib.import_module(module_name), attr)
    holder = typer.Typer()
    if isinstance(implementation, typer.Typer):
        holder.add_typer(implementation, name=name)
    else:
        holder.command(name)(implementation)
    return typer.main.get_group(holder).commands[name]


class LazyCommand(TyperCommand):
    """Stands in for a verb in its parent group: it carries the name and one-line help that listings need,
    and builds the real command (importing its module) only when click parses the verb's arguments."""

    def __init__(self, path: str, verbs: dict[str, Verb]) -> None:
        self.path = path
        self.verbs = verbs
        verb = verbs[path]
        super().__init__(path.rsplit(" ", 1)[-1], help=verb.help, short_help=verb.help)
        self._real: Any = None

    def real(self) -> Any:
        if self._real is None:
            command = load_command(self.name or "", self.verbs[self.path].target)
            if isinstance(command, TyperGroup):
                for child in children_of(self.path, self.verbs):
                    command.add_command(LazyCommand(child, self.verbs))
            self._real = command
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        # The context (and so the command that is invoked, asked for help or completed) is the real one.
        return self.real().make_context(info_name, args, parent=parent, **extra)


def children_of(prefix: str, verbs: dict[str, Verb]) -> list[str]:
    """Paths of the verbs mounted directly under `prefix` ("" for the top level), in table order."""
    depth = 0 if not prefix else prefix.count(" ") + 1
    start = f"{prefix} " if prefix else ""
    return [path for path in verbs if path.startswith(start) and path.count(" ") == depth]


class TunegateGroup(TyperGroup):
    """The top-level group: every verb of `VERBS` as a `LazyCommand`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for path in children_of("", VERBS):
            self.add_command(LazyCommand(path, VERBS))


app = typer.Typer(
    name="tunegate",
    help="Governed LLM fine-tuning: scan, approve, train, evaluate, register, serve, audit.",
    cls=TunegateGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def tunegate() -> None:
    # Typer makes a group only for an app that has commands or a callback; the verbs come from VERBS.
    pass


def main() -> None:
    """The installed `tunegate` (pyproject's [project.scripts]): owner-only files, and an unforeseen failure
    reported in one line (services/cli/crash.py)."""
    from shared.storage.private import restrict_umask

    restrict_umask()  # tokens, keys, pid files, logs and the services `up` starts: owner-only
    try:
        app()
    except Exception as exc:  # click's own errors and exits are handled inside app() (standalone mode)
        from services.cli.crash import report

        sys.exit(report(exc))


if __name__ == "__main__":
    main()
