"""`tunegate demo` (what `make demo` runs): the whole path of one job, end to end, on embedded defaults.

Every step is the real `tunegate` command a user would type, run as its own process and printed before it
runs, against real service processes: up -> pre-flight scan (planted personal data and secrets found and
redacted) -> principals -> submit a high-risk job -> scan (canaries planted) -> two approvers -> training ->
evaluation and its gate verdict -> audit proofs -> down. The end-to-end test runs this same function in a
temporary TUNEGATE_HOME."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.rule import Rule

from shared.config import Settings

JOB_FILE = Path(__file__).resolve().parents[1] / "registry" / "examples" / "demo_job_high_risk.yaml"
REQUESTER = "demo-requester"
APPROVERS = ("demo-approver-1", "demo-approver-2")
FINAL_STATES = {"evaluated", "gate_failed", "failed", "cancelled", "rejected", "blocked", "expired"}
VERDICT_STATES = {"evaluated", "gate_failed"}


class DemoFailed(RuntimeError):
    pass


@dataclass
class DemoResult:
    job_id: str = ""
    final_state: str = ""
    job: dict[str, Any] = field(default_factory=dict)
    preflight_exit: int | None = None
    audit_verified: bool = False
    proof_verified: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class Demo:
    def __init__(self, home: Path, console: Console, training_steps: int | None = None) -> None:
        self.home = home.resolve()
        self.console = console
        self.training_steps = training_steps
        self.env = dict(os.environ, TUNEGATE_HOME=str(self.home), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        # The demo dataset is written under home/demo: the only folder the demo's services may read data from.
        self.env["TUNEGATE_DATA_ROOTS"] = str(self.home / "demo")
        self.env.pop("TUNEGATE_REGISTRY_URL", None)

    def run(self, *args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.console.print(f"[bold cyan]$ tunegate {shlex.join(args)}")
        proc = subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=None,
            check=False,
        )
        if check and proc.returncode != 0:
            raise DemoFailed(f"`tunegate {shlex.join(args)}` exited with {proc.returncode}")
        return proc

    def json(self, *args: str) -> Any:
        proc = self.run(*args, capture=True)
        return json.loads(proc.stdout)

    def step(self, title: str) -> None:
        self.console.print(Rule(f"[bold]{title}"))

    def wait_state(self, job_id: str, wanted: set[str], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [sys.executable, "-m", "services.cli.main", "jobs", "show", job_id, "--json"],
                env=self.env, text=True, capture_output=True, check=False,
            )
            if proc.returncode == 0:
                job = json.loads(proc.stdout)
                if job["state"] in wanted | FINAL_STATES:
                    return job
            time.sleep(1.0)
        raise DemoFailed(f"job {job_id} did not reach {sorted(wanted)} in {timeout_s:.0f}s (last: {job.get('state')})")

    def execute(self) -> DemoResult:
        result = DemoResult()
        started = time.monotonic()
        data_dir = self.home / "demo"
        dataset = data_dir / "orders.jsonl"

        self.step("1. Start Redis and the services (audit, registry, scanner, trainer, evaluator)")
        self.run("up")

        try:
            self.step("2. Pre-flight scan: what would be found and redacted before training")
            self.run("demo-dataset", str(dataset))
            preflight = self.run(
                "scan", str(dataset), "--out", str(data_dir / "orders.redacted.jsonl"),
                "--report", str(data_dir / "scan-report.json"), check=False,
            )
            result.preflight_exit = preflight.returncode

            self.step("3. Principals via the registry API (admin token from `up`): a requester, two approvers")
            existing = {p["name"] for p in self.json("principals", "list", "--json")}
            for name, role in ((REQUESTER, "requester"), *((name, "approver") for name in APPROVERS)):
                if name not in existing:
                    self.run("principals", "create", name, "--role", role)

            self.step("4. Submit the job, signed as the requester (employment screening: AI Act Annex III, high-risk)")
            submit_args = ["submit", str(JOB_FILE), "--as", REQUESTER, "--dataset", str(dataset), "--json"]
            submitted = self.json(*submit_args)
            result.job_id = job_id = submitted["job_id"]
            self.console.print(f"job id: [bold]{job_id}[/bold]")

            self.step("5. Registry intake, then the scanner checks the dataset")
            job = self.wait_state(job_id, {"awaiting_approval"}, timeout_s=180)
            self.run("jobs", "show", job_id)
            if job["state"] != "awaiting_approval":
                raise DemoFailed(f"job {job_id} stopped in state {job['state']}")

            self.step("6. Two demo approvers approve (the requester could not)")
            for number, name in enumerate(APPROVERS, start=1):
                self.console.print(f"[bold]approver {number} of 2:[/bold] {name}")
                self.run("approve", job_id, "--as", name, "--comment", f"reviewed by demo approver {number}")

            self.step("7. Training on the redacted dataset (tiny base, LoRA SFT)")
            self.run("jobs", "watch", job_id, "--timeout", "900", check=False)
            job = self.wait_state(job_id, {"trained"}, timeout_s=900)
            self.run("jobs", "show", job_id)

            self.step("8. Evaluation against the base: quality, memorisation (canaries), PII leakage, red team, "
                      "bias, hallucination; the high-risk gate")
            job = self.wait_state(job_id, VERDICT_STATES, timeout_s=900)
            result.final_state = job["state"]
            result.job = job
            self.run("eval", "show", job_id, check=False)

            self.step("9. Audit: verify the whole ledger, then prove this job's request is in it")
            time.sleep(1.0)  # let the last events be signed over
            verify = self.run("audit", "verify", check=False)
            result.audit_verified = verify.returncode == 0
            event_id = submitted["event_id"]  # the job.requested event published by `tunegate submit`
            if event_id:
                proof_file = data_dir / "proof.json"
                self.run("audit", "proof", event_id, "--out", str(proof_file))
                check = self.run(
                    "audit", "verify-proof", str(proof_file),
                    "--public-key", str(self.home / "keys" / "audit_ed25519.pub"), check=False,
                )
                result.proof_verified = check.returncode == 0
            self.run("audit", "tail", "-n", "8")
            self.run("status", check=False)
        finally:
            self.step("10. Stop what `tunegate up` started")
            self.run("down", check=False)
        result.timings["total_s"] = time.monotonic() - started
        return result


def demo(
    home: Path | None = typer.Option(None, help="TUNEGATE_HOME for the demo (default: the configured home)."),
) -> None:
    """Run the whole path of one job end to end on embedded defaults."""
    console = Console()
    target = home or Settings().home_dir
    try:
        result = Demo(target, console).execute()
    except DemoFailed as exc:
        console.print(f"[red]demo failed: {exc}")
        console.print(f"logs: {Path(target) / 'logs'}")
        raise typer.Exit(1) from exc
    console.print(Rule("[bold]Demo summary"))
    console.print(f"job {result.job_id}: {result.final_state}")
    latest = (result.job or {}).get("latest_evaluation") or {}
    if latest:
        verdict = "passed" if latest.get("passed") else "FAILED"
        console.print(f"evaluation gate ({(result.job or {}).get('risk_tier')} tier): {verdict}; "
                      f"report: tunegate eval show {result.job_id}")
    console.print(f"pre-flight scan exit code: {result.preflight_exit} (0 clean/redacted, 1 blocked)")
    console.print(f"audit ledger verified: {result.audit_verified}; inclusion proof verified: {result.proof_verified}")
    console.print(f"took {result.timings['total_s']:.0f}s; state, logs, traces under {Path(target).resolve()}")
    if result.final_state not in VERDICT_STATES or not result.audit_verified or not result.proof_verified:
        raise typer.Exit(1)
