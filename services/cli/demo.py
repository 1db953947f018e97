"""`tunegate demo` (what `make demo` runs): the whole path of one job, end to end, on embedded defaults.

Every step is the real `tunegate` command a user would type, run as its own process and printed before it
runs, against real service processes: up -> pre-flight scan (planted personal data and secrets found and
redacted) -> principals -> submit a high-risk job -> scan (canaries planted) -> two approvers -> training ->
evaluation and its gate verdict -> its model version -> a minimal-risk job to a model version that is
approved and deployed under an alias -> RLHF from that version against a reward model (services/cli/demo_rlhf.py) ->
its AIBOM, proven against the ledger -> an API key and the alias called through the gateway with the `openai`
client (services/cli/demo_gateway.py) -> an incident and the evidence pack -> a customer's erasure: retire,
retrain, redeploy, certificate (services/cli/demo_erasure.py) -> audit proofs -> down. The
end-to-end test runs this same function in a temporary TUNEGATE_HOME."""

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

from services.cli.demo_erasure import ErasureTour, erase
from services.cli.demo_gateway import GatewayTour, tour
from services.cli.demo_rlhf import RlhfTour, rlhf_tour
from shared.config import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "registry" / "examples"
JOB_FILE = EXAMPLES / "demo_job_high_risk.yaml"
RELEASE_JOB_FILE = EXAMPLES / "demo_job.yaml"
"""The minimal-risk job whose model version the demo approves and deploys."""
REQUESTER = "demo-requester"
APPROVERS = ("demo-approver-1", "demo-approver-2")
DEPLOYER = "demo-deployer"
AUDITOR = "demo-auditor"
ALIAS = "support-triage"
TENANT = "demo-tenant"
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
    release_job: dict[str, Any] = field(default_factory=dict)
    version: dict[str, Any] = field(default_factory=dict)
    """The deployed model version (tunegate models show --json)."""
    gated_version: dict[str, Any] = field(default_factory=dict)
    """The high-risk job's model version, as registered (a candidate whether or not its gate passed)."""
    aibom_path: str = ""
    aibom_verified: bool = False
    models_status: dict[str, Any] = field(default_factory=dict)
    """What `tunegate status --json` says of the model versions (how many, which are past their review)."""
    incidents_status: dict[str, Any] = field(default_factory=dict)
    """What `tunegate status --json` says of incidents (how many are open, which are past their deadline)."""
    rlhf: RlhfTour | None = None
    """The RLHF step: the reward model and the policy trained from the release version against it."""
    gateway: GatewayTour | None = None
    """What the gateway step saw: redaction, the blocked jailbreak, the stream, the verified provenance."""
    incident_id: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    """`tunegate report --json` of the deployed version: obligation counts and proofs verified."""
    evidence_dir: str = ""
    erasure: ErasureTour | None = None
    """What the erasure step saw: the retired version, the retrained replacement, the verified certificate."""
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

    def version_of(self, job_id: str) -> dict[str, Any]:
        """The model version registered from a job's newest evaluation."""
        versions = [v for v in self.json("models", "list", "--json") if v["job_id"] == job_id]
        if not versions:
            raise DemoFailed(f"no model version was registered for job {job_id}")
        return dict(self.json("models", "show", versions[0]["id"], "--json"))

    def print_console_logins(self, names: list[str]) -> None:
        """The web console's address and the tokens to log in with, to follow the demo in a browser while the
        stack is up (`tunegate down` at the end stops it)."""
        from services.registry.adapters.credentials import CredentialStore

        settings = Settings(home=self.home)
        store = CredentialStore(settings)
        url = settings.resolved_registry_url()
        self.console.print(f"web console: [bold]{url}/console/[/bold] (log in with one of these tokens)")
        for name, token in (("admin", store.admin_token()), *((name, store.token(name)) for name in names)):
            if token:
                self.console.print(f"  {name}: {token}", highlight=False, soft_wrap=True)

    def execute(self) -> DemoResult:
        result = DemoResult()
        started = time.monotonic()
        data_dir = self.home / "demo"
        dataset = data_dir / "orders.jsonl"

        self.step("1. Start Redis and the services (audit, registry, scanner, trainer, evaluator, gateway)")
        self.run("up")

        try:
            self.step("2. Pre-flight scan: what would be found and redacted before training")
            self.run("demo-dataset", str(dataset))
            preflight = self.run(
                "scan", str(dataset), "--out", str(data_dir / "orders.redacted.jsonl"),
                "--report", str(data_dir / "scan-report.json"), check=False,
            )
            result.preflight_exit = preflight.returncode

            self.step("3. Principals via the registry API (admin token from `up`): a requester, two approvers, "
                      "a deployer")
            existing = {p["name"] for p in self.json("principals", "list", "--json")}
            wanted = (
                (REQUESTER, "requester"), *((name, "approver") for name in APPROVERS), (DEPLOYER, "deployer"),
                (AUDITOR, "auditor"),
            )
            for name, role in wanted:
                if name not in existing:
                    self.run("principals", "create", name, "--role", role)
            self.print_console_logins([name for name, _ in wanted])

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
            # On a busy machine `jobs watch` can return after the evaluation began: past "trained" is fine too.
            job = self.wait_state(job_id, {"trained", "evaluating"} | VERDICT_STATES, timeout_s=900)
            self.run("jobs", "show", job_id)

            self.step("8. Evaluation against the base: quality, memorisation (canaries), PII leakage, red team, "
                      "bias, hallucination; the high-risk gate")
            job = self.wait_state(job_id, VERDICT_STATES, timeout_s=900)
            result.final_state = job["state"]
            result.job = job
            self.run("eval", "show", job_id, check=False)

            self.step("9. The model registry: the evaluated artefact is a registered model version with its AIBOM")
            result.gated_version = self.version_of(job_id)
            self.run("models", "show", result.gated_version["id"])
            if not result.gated_version["gate_passed"]:
                self.console.print("its gate failed, so no approver can approve it:")
                self.run("models", "approve", result.gated_version["id"], "--as", APPROVERS[0], check=False)

            self.step("10. A minimal-risk job (support triage) from request to a deployed model version")
            release = self.json("submit", str(RELEASE_JOB_FILE), "--as", REQUESTER, "--dataset", str(dataset), "--json")
            release_id = release["job_id"]
            self.wait_state(release_id, {"awaiting_approval"}, timeout_s=180)
            self.run("approve", release_id, "--as", APPROVERS[0], "--comment", "minimal risk: one approval")
            result.release_job = self.wait_state(release_id, VERDICT_STATES, timeout_s=1800)
            self.run("eval", "show", release_id, check=False)
            version = self.version_of(release_id)
            vid = version["id"]
            self.run("models", "approve", vid, "--as", APPROVERS[1], "--comment", "gate passed; metrics reviewed")
            self.run("models", "deploy", vid, "--alias", ALIAS, "--tenant", TENANT, "--as", DEPLOYER)
            result.version = self.json("models", "show", vid, "--json")
            self.run("models", "list")

            self.step("10b. RLHF from that version: a reward model on rated pairs, then GRPO against it (DPO first: "
                      "the job says why not)")
            result.rlhf = rlhf_tour(self, policy_version=vid, dataset=dataset, requester=REQUESTER,
                                    approvers=APPROVERS, verdict_states=VERDICT_STATES)

            self.step("11. The AIBOM (CycloneDX 1.6), and its proof against the audit ledger, checked offline")
            aibom_file = data_dir / f"{vid}.aibom.json"
            self.run("models", "show", vid, "--aibom", "--out", str(aibom_file))
            result.aibom_path = str(aibom_file)
            self.console.print(f"AIBOM: [bold]{aibom_file}[/bold]")
            time.sleep(1.0)  # the ledger signs a tree head over model.registered
            aibom_proof = data_dir / f"{vid}.aibom-proof.json"
            self.run("models", "aibom-proof", vid, "--out", str(aibom_proof))
            checked = self.run(
                "models", "verify-aibom", str(aibom_file), "--proof", str(aibom_proof),
                "--public-key", str(self.home / "keys" / "audit_ed25519.pub"), check=False,
            )
            result.aibom_verified = checked.returncode == 0

            self.step("12. The gateway: an API key for the demo tenant, then the alias through the openai client "
                      "(DLP, a jailbreak, streaming, provenance)")
            result.gateway = tour(self, alias=ALIAS, tenant=TENANT)

            self.step("13. An incident on the deployed version (EU AI Act Art. 73), then its compliance evidence pack")
            incident = self.json(
                "incidents", "open", "--title", "Demo: an answer repeated a customer's order number",
                "--severity", "other", "--version", vid, "--as", APPROVERS[0], "--json",
            )
            result.incident_id = incident["id"]
            self.run("incidents", "list")
            evidence_dir = data_dir / "evidence" / vid
            for _ in range(10):  # until the ledger has signed a tree head over incident.opened (about 1 s)
                time.sleep(1.0)
                result.evidence = self.json("report", vid, "--out", str(evidence_dir), "--as", APPROVERS[0], "--json")
                if result.evidence["proofs_verified"] == result.evidence["audit_entries"]:
                    break
            result.evidence_dir = str(evidence_dir)
            e = result.evidence
            self.console.print(f"evidence pack: [bold]{evidence_dir}/evidence.html[/bold] (and evidence.json): "
                               f"{e['evidenced']} evidenced, {e['partly']} partly, {e['gap']} gap, "
                               f"{e['not_applicable']} not applicable; {e['proofs_verified']} of {e['audit_entries']} "
                               "ledger entries proven", highlight=False)

            self.step("14. A customer asks to be erased (GDPR Art. 17): retire, retrain without the records, redeploy "
                      "under the alias, certificate verified offline against the audit key")
            result.erasure = erase(self, dataset=dataset, alias=ALIAS, tenant=TENANT, version_id=vid,
                                   approvers=APPROVERS, deployer=DEPLOYER, auditor=AUDITOR,
                                   verdict_states=VERDICT_STATES)

            self.step("15. Audit: verify the whole ledger, then prove this job's request is in it")
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
            status = self.run("status", "--json", capture=True, check=False)
            result.models_status = json.loads(status.stdout).get("models") or {}
            result.incidents_status = json.loads(status.stdout).get("incidents") or {}
        finally:
            self.step("16. Stop what `tunegate up` started")
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
    if result.version:
        console.print(f"model version {result.version['id']}: {result.version['state']} as {ALIAS!r} for {TENANT}; "
                      f"AIBOM {result.aibom_path} (verified against the ledger: {result.aibom_verified})")
    tour_ = result.gateway
    if tour_ is not None:
        console.print(f"gateway {tour_.url}: personal data redacted {tour_.marking.get('dlp', {}).get('prompt')}, "
                      f"jailbreak refused ({tour_.jailbreak_status}), provenance verified: {tour_.provenance_verified}")
    if result.evidence:
        e = result.evidence
        console.print(f"evidence pack {result.evidence_dir}/evidence.html: {e['evidenced']} evidenced, {e['partly']} "
                      f"partly, {e['gap']} gap, {e['not_applicable']} not applicable (incident {result.incident_id})")
    if result.erasure is not None:
        er = result.erasure
        console.print(f"erasure {er.erasure['id']}: {ALIAS!r} now served by {er.served_version}; certificate "
                      f"{er.certificate_path} (verified against the audit key: {er.verified})", highlight=False)
    console.print(f"audit ledger verified: {result.audit_verified}; inclusion proof verified: {result.proof_verified}")
    console.print(f"took {result.timings['total_s']:.0f}s; state, logs, traces under {Path(target).resolve()}")
    deployed = result.version.get("state") == "deployed"
    if result.final_state not in VERDICT_STATES or not result.audit_verified or not result.proof_verified:
        raise typer.Exit(1)
    if not deployed or not result.aibom_verified:
        raise typer.Exit(1)
    if tour_ is None or not tour_.provenance_verified or tour_.jailbreak_status != 400:
        raise typer.Exit(1)
    if result.erasure is None or not result.erasure.verified:
        raise typer.Exit(1)
