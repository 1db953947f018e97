"""Pure registry logic: advice matrix, AI Act tiering, licences, justification, state machine, policy files."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluator.suites.registry import suite_names
from services.registry.adapters.policy_file import load_policy
from services.registry.domain.advice import advise
from services.registry.domain.intake import check_licence, classify_risk, evaluate_intake
from services.registry.domain.policy import PolicyError, RiskRuleRegistry
from services.registry.domain.states import TERMINAL, InvalidTransition, JobState, check_transition
from shared.events.payloads import JobSpec, UseCase
from shared.models.catalogue import load_catalogue
from tests.registry.registry_support import make_spec

POLICY = load_policy()
RULES = RiskRuleRegistry.default()
SUITES = frozenset(suite_names())


def use_case(**fields: object) -> UseCase:
    return UseCase.model_validate({"name": "x", **fields})


@pytest.mark.parametrize(
    ("fields", "factor"),
    [
        ({"knowledge_changes": "weekly"}, "knowledge changes weekly"),
        ({"knowledge_changes": "daily"}, "knowledge changes daily"),
        ({"needs_citations": True}, "cite sources"),
        ({"erasure_obligation": True}, "GDPR erasure"),
        ({"proof_of_concept": True}, "proof of concept"),
    ],
)
def test_rag_factors_give_prefer_rag_and_need_an_override(fields: dict[str, object], factor: str) -> None:
    advice = advise(use_case(example_count=5000, **fields), risk_tier="minimal", min_examples=2000)
    assert advice.verdict == "prefer_rag"
    assert advice.requires_override
    assert any(factor in reason for reason in advice.reasons)


def test_rag_factor_wins_over_fine_tuning_factor_which_is_kept_as_supporting() -> None:
    advice = advise(
        use_case(needs_citations=True, needs_consistent_format=True, example_count=5000),
        risk_tier="minimal",
        min_examples=2000,
    )
    assert advice.verdict == "prefer_rag"
    assert any("consistent voice" in s for s in advice.supporting)


@pytest.mark.parametrize("fields", [{"needs_consistent_format": True}, {"wants_smaller_model": True}])
def test_fine_tuning_fits(fields: dict[str, object]) -> None:
    advice = advise(use_case(example_count=5000, **fields), risk_tier="limited", min_examples=2000)
    assert advice.verdict == "fine_tuning_fits"
    assert not advice.requires_override
    assert advice.warnings == []


def test_monthly_changes_alone_are_not_a_rag_factor() -> None:
    advice = advise(use_case(knowledge_changes="monthly", example_count=5000), risk_tier="minimal", min_examples=2000)
    assert advice.verdict == "no_clear_signal"


def test_few_examples_warn_with_the_count() -> None:
    advice = advise(use_case(needs_consistent_format=True, example_count=300), risk_tier="minimal", min_examples=2000)
    assert advice.verdict == "fine_tuning_fits"
    assert len(advice.warnings) == 1 and "only 300 examples" in advice.warnings[0]
    undeclared = advise(use_case(needs_consistent_format=True), risk_tier="minimal", min_examples=2000)
    assert "not declared" in undeclared.warnings[0]


def test_high_risk_gives_both_with_provider_obligations() -> None:
    advice = advise(use_case(needs_citations=True, example_count=5000), risk_tier="high", min_examples=2000)
    assert advice.verdict == "both_with_provider_obligations"
    assert "provider obligations" in advice.reasons[0]
    assert not advice.requires_override


@pytest.mark.parametrize(
    ("fields", "tier", "rule"),
    [
        ({"practices": ["Social Scoring"]}, "prohibited", "prohibited_practice:social_scoring"),
        ({"domain": "employment", "practices": ["social-scoring"]}, "prohibited", "prohibited_practice:social_scoring"),
        ({"domain": "employment"}, "high", "annex_iii_area:employment"),
        ({"domain": "HR"}, "high", "annex_iii_area:employment"),
        ({"domain": "credit scoring"}, "high", "annex_iii_area:credit_scoring"),
        ({"domain": "education"}, "high", "annex_iii_area:education"),
        ({"domain": "essential-services"}, "high", "annex_iii_area:essential_services"),
        ({"domain": "law_enforcement"}, "high", "annex_iii_area:law_enforcement"),
        ({"domain": "migration"}, "high", "annex_iii_area:migration"),
        ({"domain": "justice"}, "high", "annex_iii_area:justice"),
        ({"practices": ["chatbot"]}, "limited", "transparency_obligation:chatbot"),
        ({"domain": "customer_service"}, "limited", "transparency_obligation:customer_service"),
        ({"domain": "general"}, "minimal", "default:minimal"),
    ],
)
def test_ai_act_tier_and_deciding_rule(fields: dict[str, object], tier: str, rule: str) -> None:
    decision = classify_risk(use_case(**fields), POLICY, RULES)
    assert (decision.tier, decision.rule) == (tier, rule)
    assert decision.reason


def test_missing_justification_names_every_field() -> None:
    spec = make_spec(problem="", why_not_rag="   ", risks="")
    decision = evaluate_intake(spec, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES)
    assert not decision.accepted
    assert decision.reasons == [
        "justification incomplete: missing or empty use_case.problem, use_case.why_not_rag, use_case.risks"
    ]


def test_prohibited_practice_rejects_and_all_failures_are_reported_together() -> None:
    spec = make_spec(problem="", practices=["subliminal manipulation"])
    spec = spec.model_copy(update={"base_model": "no-such-model"})
    decision = evaluate_intake(spec, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES)
    assert not decision.accepted
    assert len(decision.reasons) == 3
    assert "prohibited by EU AI Act Art. 5" in decision.reasons[2]
    assert "neither a known base" in decision.reasons[1]


def _local(tmp_path: Path, labels: dict[str, str]) -> JobSpec:
    return make_spec().model_copy(update={"base_model": str(tmp_path), "labels": labels})


def test_licence_of_known_and_local_bases(tmp_path: Path) -> None:
    known = check_licence(make_spec(), POLICY, base_is_directory=False)
    assert (known.allowed, known.licence_id) == (True, "Apache-2.0")
    undeclared = check_licence(_local(tmp_path, {}), POLICY, base_is_directory=True)
    assert not undeclared.allowed and "labels.licence" in undeclared.decision
    mit = check_licence(_local(tmp_path, {"license": "MIT"}), POLICY, base_is_directory=True)
    assert (mit.allowed, mit.licence_id) == (True, "MIT")
    llama = check_licence(_local(tmp_path, {"licence": "llama3"}), POLICY, base_is_directory=True)
    assert not llama.allowed and "llama3 is not on the allowlist" in llama.decision


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.REQUESTED, JobState.APPROVED),
        (JobState.SCANNING, JobState.TRAINING),
        (JobState.AWAITING_APPROVAL, JobState.TRAINED),
        (JobState.TRAINED, JobState.TRAINING),
    ],
)
def test_invalid_transitions_name_the_current_state(current: JobState, target: JobState) -> None:
    with pytest.raises(InvalidTransition, match=f"is in state '{current.value}'; cannot move to '{target.value}'"):
        check_transition("job_x", current.value, target)


def test_terminal_states() -> None:
    assert {JobState.REJECTED, JobState.BLOCKED, JobState.EXPIRED, JobState.FAILED, JobState.CANCELLED} <= TERMINAL
    # A trained job's evaluation can always be run again, whatever the last verdict was.
    assert not {JobState.AWAITING_APPROVAL, JobState.TRAINED, JobState.EVALUATED, JobState.GATE_FAILED} & TERMINAL
    check_transition("job_x", "awaiting_approval", JobState.EXPIRED)


def test_policy_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad_rule = tmp_path / "p.yaml"
    bad_rule.write_text(
        "licences: {allowed: [MIT]}\njustification: {required_fields: [problem]}\n"
        "risk: {rules: [{name: no_such_rule}]}\n"
    )
    with pytest.raises(PolicyError, match=r"p\.yaml: risk\.rules\[0\]: .*unknown rule 'no_such_rule'"):
        load_policy(bad_rule)
    bad_field = tmp_path / "q.yaml"
    bad_field.write_text("licences: {allowed: [MIT]}\njustification: {required_fields: [nope]}\nrisk: {}\n")
    with pytest.raises(PolicyError, match=r"q\.yaml: justification: .*nope"):
        load_policy(bad_field)
    one_approver = tmp_path / "r.yaml"
    one_approver.write_text(
        "licences: {allowed: [MIT]}\njustification: {required_fields: [problem]}\nrisk: {}\n"
        "approvals: {required: {minimal: 1, limited: 1, high: 1}}\n"
    )
    with pytest.raises(PolicyError, match="two distinct approvers"):
        load_policy(one_approver)


def test_custom_rule_registered_by_name(tmp_path: Path) -> None:
    from services.registry.domain.policy import RuleOutcome

    rules = RiskRuleRegistry.default()
    rules.add("medical", lambda uc, params: RuleOutcome("high", "medical:x", "medical") if uc.domain == "med" else None)
    path = tmp_path / "p.yaml"
    path.write_text(
        "licences: {allowed: [MIT]}\njustification: {required_fields: [problem]}\nrisk: {rules: [{name: medical}]}\n"
    )
    policy = load_policy(path, rules)
    assert classify_risk(use_case(domain="med"), policy, rules).rule == "medical:x"
    with pytest.raises(ValueError, match="already registered"):
        rules.add("medical", lambda uc, params: None)


def test_hyperparameters_are_checked_against_the_trainer_schema_at_intake() -> None:
    spec = make_spec()
    bad = spec.model_copy(update={"hyperparameters": {"max_steps": 0, "warmup": 3, "beta": 0.1, "seed": -1}})
    decision = evaluate_intake(bad, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES)
    assert not decision.accepted
    text = "; ".join(decision.reasons)
    assert "hyperparameters.seed" in text
    good = spec.model_copy(update={"hyperparameters": {"max_steps": 10, "seed": 3}})
    assert evaluate_intake(good, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES).accepted
    wrong_method = spec.model_copy(update={"hyperparameters": {"beta": 0.1}})
    decision = evaluate_intake(wrong_method, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES)
    assert any("hyperparameters.beta: only dpo and rlhf use beta" in r for r in decision.reasons)
    unknown = spec.model_copy(update={"hyperparameters": {"warmup": 3}})
    decision = evaluate_intake(unknown, POLICY, RULES, base_is_directory=False, evaluation_suites=SUITES)
    assert any("warmup" in r for r in decision.reasons)


def test_known_base_licences_come_from_the_shared_catalogue(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    assert POLICY.base_models == catalogue
    for name, entry in catalogue.bases.items():
        check = check_licence(make_spec().model_copy(update={"base_model": name}), POLICY, base_is_directory=False)
        assert check.licence_id == entry.licence and entry.source in check.source
    restated = tmp_path / "old.yaml"
    restated.write_text(
        "licences: {allowed: [MIT]}\njustification: {required_fields: [problem]}\nrisk: {}\n"
        "known_bases: {tiny: {licence: MIT}}\n"
    )
    with pytest.raises(PolicyError, match=r"known_bases: base models and their licences live in the base-model"):
        load_policy(restated)
