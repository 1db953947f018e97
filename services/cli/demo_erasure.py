"""The erasure part of `tunegate demo` (GDPR Art. 17, docs/erasure.md): a customer whose records are in the
demo dataset asks to be erased. `tunegate erase` finds the model versions trained on those records, retires
them at once (the gateway stops serving the alias) and submits a retraining job without the records; the demo
principals take it through the gate (approval, training, evaluation, model approval) and deploy the
replacement under the same alias; the registry then issues the certificate, which is written to a file,
printed and verified offline against the audit log's public key; finally the gateway answers under the alias
from the replacement."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.cli.demo import Demo

REASON = "Demo: the customer's Art. 17 request of today"


@dataclass
class ErasureTour:
    subject: str = ""
    subject_records: int = 0
    """How many records of the erased customer the demo dataset holds."""
    erasure: dict[str, Any] = field(default_factory=dict)
    """`tunegate erase --json`: located datasets, tainted versions, the steps done at once."""
    retired: dict[str, Any] = field(default_factory=dict)
    """The version that served the alias, after the erasure (`models show --json`)."""
    retraining_job: dict[str, Any] = field(default_factory=dict)
    replacement: dict[str, Any] = field(default_factory=dict)
    """The retrained version, deployed under the alias (`models show --json`)."""
    final: dict[str, Any] = field(default_factory=dict)
    """`tunegate erasure show --json` once the certificate is issued."""
    certificate_path: str = ""
    certificate: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    served_version: str = ""
    """The model version the gateway named in its answer under the alias after the replacement."""
    timings: dict[str, float] = field(default_factory=dict)


def first_subject(dataset: Path, subject_field: str = "customer_id") -> tuple[str, int]:
    """The subject of the dataset's first record and how many records are theirs: a subject we know is there."""
    records = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    subject = str(records[0][subject_field])
    return subject, sum(1 for r in records if r.get(subject_field) == subject)


def condensed(certificate: dict[str, Any]) -> dict[str, Any]:
    """The certificate as printed: long lists (every record hash of a replacement dataset, the proofs) counted."""
    shown = json.loads(json.dumps(certificate))
    for replacement in shown.get("replacements", []):
        replacement["record_hashes"] = f"[{len(replacement['record_hashes'])} record hashes]"
    for dataset in shown.get("affected_datasets", []):
        dataset["record_hashes"] = [h[:16] + "..." for h in dataset["record_hashes"]]
    if "audit_proofs" in shown:
        shown["audit_proofs"] = f"[{len(shown['audit_proofs'])} inclusion proofs under the log's signed tree head]"
    return shown


def erase(
    demo: Demo, *, dataset: Path, alias: str, tenant: str, version_id: str, approvers: tuple[str, str],
    deployer: str, auditor: str, verdict_states: set[str],
) -> ErasureTour:
    from services.cli.demo import DemoFailed

    out = ErasureTour()
    started = time.monotonic()
    data_dir = demo.home / "demo"
    out.subject, out.subject_records = first_subject(dataset)
    demo.console.print(f"customer {out.subject} has {out.subject_records} record(s) in {dataset.name} and asks to "
                       "be erased", highlight=False)
    before = {j["id"] for j in demo.json("jobs", "list", "--json")}
    out.erasure = demo.json("erase", "--subject", out.subject, "--reason", REASON, "--json")
    erasure_id = out.erasure["id"]
    demo.run("erasure", "show", erasure_id, "--as", auditor)
    out.retired = demo.json("models", "show", version_id, "--json")
    demo.console.print(f"{version_id} is {out.retired['state']}: the gateway no longer serves it as {alias!r}",
                       highlight=False)

    new_jobs = [j for j in demo.json("jobs", "list", "--json") if j["id"] not in before]
    if len(new_jobs) != 1:
        raise DemoFailed(f"erasure {erasure_id} submitted {len(new_jobs)} retraining job(s), expected one")
    job_id = new_jobs[0]["id"]
    demo.console.print(f"retraining job without the customer's records: [bold]{job_id}[/bold]")
    demo.wait_state(job_id, {"awaiting_approval"}, timeout_s=180)
    demo.run("approve", job_id, "--as", approvers[0], "--comment", f"retraining for erasure {erasure_id}")
    out.retraining_job = demo.wait_state(job_id, verdict_states, timeout_s=1800)
    out.timings["retraining_s"] = time.monotonic() - started
    if out.retraining_job["state"] != "evaluated":
        raise DemoFailed(f"the retraining job {job_id} ended {out.retraining_job['state']}, not evaluated")
    replacement = demo.version_of(job_id)["id"]
    demo.run("models", "approve", replacement, "--as", approvers[1], "--comment", "retrained without the erased "
             "customer's records; gate passed")
    demo.run("models", "deploy", replacement, "--alias", alias, "--tenant", tenant, "--as", deployer)
    out.replacement = demo.json("models", "show", replacement, "--json")

    # The scanner deletes its stored copies on its own (dataset.erasure.shredded): the last step before the
    # certificate, so it may land just after the deployment.
    deadline = time.monotonic() + 60
    while True:
        out.final = demo.json("erasure", "show", erasure_id, "--as", auditor, "--json")
        if out.final["certificate_issued"] or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    demo.run("erasure", "show", erasure_id, "--as", auditor)
    if not out.final["certificate_issued"]:
        raise DemoFailed(f"erasure {erasure_id} issued no certificate within 60 s ({out.final['state']})")

    cert_file = data_dir / f"{erasure_id}.certificate.json"
    for _ in range(15):  # until the ledger has signed a tree head over dataset.erasure.completed (about 1 s)
        time.sleep(1.0)
        if demo.run("erasure", "show", erasure_id, "--certificate", str(cert_file), "--as", auditor,
                    check=False).returncode == 0:
            break
    else:
        raise DemoFailed(f"the certificate of {erasure_id} could not be written with its audit proofs")
    out.certificate_path = str(cert_file)
    out.certificate = json.loads(cert_file.read_text())
    demo.console.print_json(data=condensed(out.certificate))
    checked = demo.run("erasure", "verify", str(cert_file), "--public-key",
                       str(demo.home / "keys" / "audit_ed25519.pub"), check=False)
    out.verified = checked.returncode == 0
    out.served_version = _served_under(demo, alias, replacement)
    demo.console.print(f"the gateway answers {alias!r} from {out.served_version}", highlight=False)
    out.timings["total_s"] = time.monotonic() - started
    demo.console.print(f"erasure step: {out.timings['total_s']:.0f}s, of which {out.timings['retraining_s']:.0f}s "
                       "from the request to the evaluated retraining (scan, approval, LoRA training, evaluation)",
                       highlight=False)
    return out


def _served_under(demo: Demo, alias: str, expected: str) -> str:
    """Ask the gateway under the alias, with the tenant's key from the gateway step, until the replacement
    answers (the deployment reaches the gateway as an event)."""
    import openai

    from services.cli.demo_gateway import wait_url

    key = (demo.home / "demo" / "gateway.key").read_text().strip()
    client = openai.OpenAI(base_url=f"{wait_url(demo.home)}/v1", api_key=key, max_retries=0, timeout=120)
    served = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=alias, messages=[{"role": "user", "content": "Where is my order?"}], temperature=0, max_tokens=8,
            )
            served = str((json.loads(raw.text).get("tunegate") or {}).get("model_version", ""))
            if served == expected:
                break
        except openai.APIStatusError:
            pass  # 404 while the alias has no version, until the deployment event arrives
        time.sleep(0.5)
    return served
