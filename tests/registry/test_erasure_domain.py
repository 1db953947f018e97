"""The Erasure aggregate and lineage matching, pure: who may erase, what is located and tainted, retirement at
once or after the policy's grace period (and the registry's timer), replacements, and the certificate's
checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry.domain.erasure import (
    DatasetHit,
    Erasure,
    ScannedDataset,
    VersionFacts,
    affected_versions,
    locate,
    validate_erasure_id,
)
from services.registry.domain.errors import Forbidden, InvalidRequest
from services.registry.domain.principals import Principal
from services.registry.erasure import certificate
from services.registry.erasure.service import new_erasure_id
from shared.merkle import merkle_root

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ANN, BOB = "a" * 64, "b" * 64
R1, R2, R3 = "1" * 64, "2" * 64, "3" * 64


def principal(*roles: str) -> Principal:
    return Principal.create(name="root", roles=list(roles), token_sha256="0" * 64, key=None, by="test", now=NOW)


def version(vid: str, job: str, state: str = "deployed", alias: str | None = "triage", fp: str = "f1") -> VersionFacts:
    return VersionFacts(vid, job, (fp,), state, alias)


def new(by: Principal | None = None) -> Erasure:
    return Erasure.request(new_erasure_id(), subject_key="c" * 64, reason="Art. 17", by=by or principal("admin"),
                           now=NOW)


def test_only_admins_erase_and_ids_are_checked() -> None:
    with pytest.raises(Forbidden, match="requesting an erasure"):
        new(principal("approver"))
    with pytest.raises(InvalidRequest, match="reason"):
        Erasure.request(new_erasure_id(), subject_key="c" * 64, reason=" ", by=principal("admin"), now=NOW)
    with pytest.raises(InvalidRequest, match="erasure id"):
        validate_erasure_id("../../etc")
    [requested] = new().pull_events()
    assert requested.subject_key == "c" * 64  # type: ignore[attr-defined]


def test_lineage_finds_the_subjects_datasets_and_the_versions_trained_on_them() -> None:
    scans = [
        ScannedDataset("job_1", "f1", {ANN: [R2, R1], BOB: [R3]}),
        ScannedDataset("job_2", "f2", {BOB: [R3]}),
        ScannedDataset("job_3", "f3", {ANN: [R1]}),
    ]
    hits = locate(ANN, scans)
    assert hits == [DatasetHit("job_1", "f1", (R1, R2)), DatasetHit("job_3", "f3", (R1,))]
    versions = [version("m.v1", "job_1"), version("m.v2", "job_2", fp="f2"), version("n.v1", "job_9", fp="f3")]
    assert [v.id for v in affected_versions(hits, versions)] == ["m.v1", "n.v1"]  # by job or by fingerprint
    assert locate("d" * 64, scans) == []


def test_versions_built_from_a_tainted_version_are_tainted_too() -> None:
    """An RLHF policy started from a tainted SFT version (or scored by a tainted reward model) carries what that
    version learnt from the subject, though its own prompts never held the records; so does its own descendant."""
    from services.registry.erasure.lineage import derived_from

    hits = [DatasetHit("job_a", "f1", ("r1",))]
    sft = version("v_sft", "job_a")
    reward_model = version("v_rm", "job_rm", state="approved", alias=None, fp="f_pairs")
    policy = VersionFacts("v_policy", "job_p", ("f_prompts",), "approved", None, derived_from=("v_sft", "v_rm"))
    grandchild = VersionFacts("v_again", "job_q", ("f_prompts",), "approved", None, derived_from=("v_policy",))
    unrelated = VersionFacts("v_other", "job_o", ("f_prompts",), "approved", None, derived_from=("v_rm",))
    found = [v.id for v in affected_versions(hits, [unrelated, grandchild, policy, reward_model, sft])]
    assert found == ["v_again", "v_policy", "v_sft"]
    tainted_rm = [v.id for v in affected_versions([DatasetHit("job_rm", "f_pairs", ("p1",))],
                                                  [unrelated, policy, reward_model, sft])]
    assert tainted_rm == ["v_other", "v_policy", "v_rm"]
    spec = {"method": {"kind": "rlhf", "rlhf": {"policy_version": "v_sft", "reward_model_version": "v_rm"}}}
    assert derived_from(spec) == ("v_sft", "v_rm")
    assert derived_from({"method": {"kind": "sft"}}) == derived_from(None) == ()


def test_a_grace_period_schedules_the_retirement() -> None:
    erasure = new()
    hits = [DatasetHit("job_1", "f1", (R1,))]
    assert erasure.record_lineage(hits, [version("m.v1", "job_1")], grace=timedelta(hours=48), now=NOW) == []
    step = erasure.step("retired")
    assert step is not None and step.status == "scheduled" and step.due == NOW + timedelta(hours=48)
    assert not erasure.retirement_due(NOW + timedelta(hours=47)) and erasure.retirement_due(NOW + timedelta(hours=48))
    erasure.record_retraining(["job_2"], actor="root", now=NOW)
    # A replacement may be deployed during the grace period; the timer still retires the tainted version.
    assert erasure.record_replacement("triage", "m.v2", "job_2", ["f2"], actor="dora", now=NOW)
    assert erasure.state == "awaiting retired"
    erasure.record_retired(["m.v1"], actor="system:registry", now=NOW + timedelta(hours=48))
    assert erasure.state == "awaiting artefacts_deleted"


def test_nothing_located_needs_only_the_certificate() -> None:
    erasure = new()
    assert erasure.record_lineage([], [], grace=timedelta(0), now=NOW) == []
    assert erasure.ready_for_certificate and erasure.state == "awaiting certificate_issued"


def test_versions_already_retired_need_no_replacement() -> None:
    erasure = new()
    retired = version("m.v1", "job_1", state="retired", alias=None)
    assert erasure.record_lineage([DatasetHit("job_1", "f1", (R1,))], [retired], grace=timedelta(0), now=NOW) == []
    assert erasure.state == "awaiting artefacts_deleted"


def test_a_replacement_must_not_be_tainted() -> None:
    erasure = new()
    hits = [DatasetHit("job_1", "f1", (R1,))]
    assert erasure.record_lineage(hits, [version("m.v1", "job_1")], grace=timedelta(0), now=NOW) == ["m.v1"]
    erasure.record_retired(["m.v1"], actor="root", now=NOW)
    assert not erasure.record_replacement("triage", "m.v2", "job_2", ["f1"], actor="dora", now=NOW)  # same data
    assert not erasure.record_replacement("other", "m.v2", "job_2", ["f2"], actor="dora", now=NOW)  # other alias
    assert erasure.record_replacement("triage", "m.v2", "job_2", ["f2"], actor="dora", now=NOW)
    assert erasure.replacements == {"triage": "m.v2"} and erasure.state == "awaiting artefacts_deleted"


def test_certificate_checks_name_what_fails() -> None:
    erasure = new()
    erasure.record_lineage([DatasetHit("job_1", "f1", (R1,))], [], grace=timedelta(0), now=NOW)
    erasure.record_deleted(["job_1"], [], actor="system:scanner", now=NOW)
    key = Ed25519PrivateKey.generate()
    leaves = [R2, R3]
    fingerprint = merkle_root(bytes.fromhex(h) for h in leaves).hex()
    good = certificate.sign(certificate.build(erasure, [certificate.Replacement("triage", "m.v2", "job_2",
                                                                                  fingerprint, leaves)],
                                              issued_at=NOW.isoformat()), key, "registry")
    assert certificate.verify(good, key.public_key()) == []
    assert any("signature" in p for p in certificate.verify(good, Ed25519PrivateKey.generate().public_key()))
    wrong_root = replace_replacement(good, fingerprint="e" * 64)
    assert any("rebuild root" in p for p in certificate.verify(wrong_root, key.public_key()))
    # Checked against the audit log's key, a certificate without its ledger anchor does not verify, and one
    # checked against no key at all is a caller's mistake, never a pass.
    log_key = Ed25519PrivateKey.generate().public_key()
    assert any("not anchored in the audit ledger" in p for p in certificate.verify(good, None, log_key))
    with pytest.raises(ValueError, match="needs the audit log's key"):
        certificate.verify(good)
    malformed = {**good, "steps": "done", "audit_proofs": ["x"]}
    assert certificate.verify(malformed, None, log_key) == [
        "steps: expected a list of objects", "audit_proofs: expected an object"]


def replace_replacement(cert: dict[str, object], **changes: object) -> dict[str, object]:
    replacements = [dict(r, **changes) for r in cert["replacements"]]  # type: ignore[attr-defined]
    return replace_dict(cert, replacements=replacements)


def replace_dict(d: dict[str, object], **changes: object) -> dict[str, object]:
    return {**d, **changes}

