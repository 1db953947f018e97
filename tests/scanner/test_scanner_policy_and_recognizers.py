"""Policy loading rules and individual recognizers (positives, and the look-alikes they must not flag)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from services.scanner.adapters.detector import Detector, RegistryError, load_registry
from services.scanner.adapters.policy_files import load_policy
from services.scanner.domain.findings import Span, VerdictInputs, decide_spans, decide_verdict, resolve_overlaps
from services.scanner.domain.policy import Action, Policy, PolicyError


def write_policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(body)
    return path


def test_secrets_may_never_be_allowed(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "name: p\nsecret_entities: [JWT]\ndefaults:\n  rules:\n    JWT: {action: redact}\n"
        "classifications:\n  public:\n    rules:\n      JWT: {action: allow}\n",
    )
    with pytest.raises(PolicyError, match=r"classifications.public / JWT: secrets may never be allowed"):
        load_policy(path)


def test_every_classification_needs_a_rule_for_every_secret(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "name: p\nsecret_entities: [JWT]\n")
    with pytest.raises(PolicyError, match="secret entity has no rule"):
        load_policy(path)
    with pytest.raises(PolicyError, match="not found"):
        load_policy("no-such-policy")


def test_score_tiers_pick_the_highest_threshold_reached(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(
            tmp_path,
            """
name: tiers
secret_entities: [JWT]
defaults:
  rules:
    JWT: {action: redact}
    PHONE_NUMBER:
      - {action: allow, min_score: 0.2}
      - {action: redact, operator: mask, min_score: 0.5}
      - {action: drop_record, min_score: 0.9}
""",
        )
    )
    assert policy.decide("internal", "PHONE_NUMBER", 0.1) is None
    assert policy.decide("internal", "PHONE_NUMBER", 0.3).action == Action.ALLOW  # type: ignore[union-attr]
    assert policy.decide("internal", "PHONE_NUMBER", 0.6).action == Action.REDACT  # type: ignore[union-attr]
    assert policy.decide("internal", "PHONE_NUMBER", 0.95).action == Action.DROP_RECORD  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="classification 'topsecret'"):
        policy.decide("topsecret", "PHONE_NUMBER", 1.0)


def test_default_policy_depends_on_classification(policy: Policy) -> None:
    assert policy.decide("internal", "EMAIL_ADDRESS", 1.0).action == Action.REDACT  # type: ignore[union-attr]
    assert policy.decide("public", "EMAIL_ADDRESS", 1.0).action == Action.BLOCK_DATASET  # type: ignore[union-attr]
    assert policy.decide("restricted", "ICD10_CODE", 0.7).action == Action.ALLOW  # type: ignore[union-attr]
    assert policy.decide("internal", "ICD10_CODE", 0.7).action == Action.DROP_RECORD  # type: ignore[union-attr]


def test_overlaps_keep_the_strongest_detection(policy: Policy) -> None:
    card = Span("CREDIT_CARD", 10, 29, 1.0)
    phone = Span("PHONE_NUMBER", 15, 29, 0.4)
    other = Span("EMAIL_ADDRESS", 40, 50, 1.0)
    assert resolve_overlaps([phone, other, card]) == [card, other]
    below = Span("PHONE_NUMBER", 60, 70, 0.1)
    assert [d.span for d in decide_spans([below, card], policy, "internal")] == [card]


def test_verdict_reasons() -> None:
    base = dict(
        personal_counts={}, personal_data_allowed=True, personal_refusal="", modified_records=0, dropped_records=0
    )
    assert decide_verdict(VerdictInputs(block_findings={}, **base)) == ("clean", [])  # type: ignore[arg-type]
    verdict, reasons = decide_verdict(VerdictInputs(block_findings={"PRIVATE_KEY": [7, 3, 7]}, **base))  # type: ignore[arg-type]
    assert verdict == "blocked" and reasons == ["policy blocks the dataset on PRIVATE_KEY: found on line(s) 3, 7"]
    no_basis = {
        **base,
        "personal_counts": {"EMAIL_ADDRESS": 2},
        "personal_data_allowed": False,
        "personal_refusal": "no legal basis",
    }
    verdict, reasons = decide_verdict(VerdictInputs(block_findings={}, **no_basis))  # type: ignore[arg-type]
    assert verdict == "blocked" and "EMAIL_ADDRESS x2" in reasons[0] and "no legal basis" in reasons[0]


DEEP_JWT_HEADER = base64.urlsafe_b64encode(b'{"alg":' + b"[" * 3_000 + b"]" * 3_000 + b"}").rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("key AKIAIOSFODNN7EXAMPL2 leaked", "AWS_ACCESS_KEY"),
        ("token ghp_" + "a1B2c3D4e5" * 3 + "a1B2c3 here", "GITHUB_TOKEN"),
        ("ci uses glpat-Ab3dEf6hIj9kLm2nOp5q", "GITLAB_TOKEN"),
        ("bot xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx", "SLACK_TOKEN"),
        ("OPENAI_API_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34", "API_KEY"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "JWT"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "PRIVATE_KEY"),
        ("db_password=Xk29dkLm2pQ9zRt4", "SECRET"),
        ("MRN: 00482913", "MEDICAL_RECORD_NUMBER"),
        ("diagnosed with E11.9 last year", "ICD10_CODE"),
        ("NHS number 943 476 5919", "UK_NHS"),
        ("paid with 2221 0000 0000 0009", "CREDIT_CARD"),
        ("paid with 4111-1111-1111-1111", "CREDIT_CARD"),
        ("call +44 20 7946 0958 today", "PHONE_NUMBER"),
    ],
)
def test_recognizer_finds(detector: Detector, text: str, entity: str) -> None:
    assert entity in {d.entity for d in detector.detect(text)}


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("paid with 4111-1111-1111-1112", "CREDIT_CARD"),  # Luhn fails
        ("we use sk-learn-style-pipelines-for-everything", "API_KEY"),  # no digits: prose, not a key
        ("go to gate E11 for boarding", "ICD10_CODE"),  # no clinical context
        ("tracking number 943 476 5919", "UK_NHS"),  # valid checksum but no NHS context
        ("the token ring network was replaced", "SECRET"),
        ("password: hunter2", "SECRET"),  # too short and low entropy to be a generated secret
        ("Bearer eyJub3RhbGciOjF9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "JWT"),  # no alg
        ("released on 2024-03-15 to all users", "PHONE_NUMBER"),
        # A header nested deeper than json.loads can recurse: not a JWT, and not a crash of the whole scan.
        (f"Bearer {DEEP_JWT_HEADER}.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "JWT"),
    ],
)
def test_recognizer_ignores_lookalikes(detector: Detector, text: str, entity: str) -> None:
    assert entity not in {d.entity for d in detector.detect(text)}


def test_registry_yaml_is_pluggable_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("""
recognizers:
  - name: Employee ids
    type: custom
    supported_entity: EMPLOYEE_ID
    patterns: [{name: emp, regex: "\\\\bEMP-\\\\d{6}\\\\b", score: 0.8}]
    prescreen: "EMP-"
  - name: Jwt
    type: class
    class: services.scanner.adapters.recognizers:JwtRecognizer
    enabled: false
""")
    entries = load_registry(path)
    assert [e.entities for e in entries] == [["EMPLOYEE_ID"]]
    found = Detector(entries).detect("badge EMP-123456 and EMP-12")
    assert [(d.entity, d.start, d.end) for d in found] == [("EMPLOYEE_ID", 6, 16)]
    path.write_text("recognizers:\n  - name: X\n    type: class\n    class: nowhere:Nothing\n")
    with pytest.raises(RegistryError, match="recognizers\\[0\\] \\(X\\): cannot import 'nowhere:Nothing'"):
        load_registry(path)
    path.write_text("recognizers:\n  - name: PhoneRecognizer\n    type: predefined\n    window: 8\n")
    with pytest.raises(RegistryError, match="window needs a prescreen"):
        load_registry(path)


def test_ner_entities_from_the_spacy_model(registry: list) -> None:  # type: ignore[type-arg]
    found = Detector(registry, {"PERSON", "LOCATION"}, ner=True).detect("Angela Merkel flew from Berlin.")
    assert {(d.entity, d.start, d.end) for d in found} == {("PERSON", 0, 13), ("LOCATION", 24, 30)}
