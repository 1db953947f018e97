"""What every evaluation suite sees and returns. A suite is a small class registered by name in
config/suites.yaml (like the scanner's recognizers): it declares a pydantic Config for its YAML options,
reads the job's data and the two models from EvaluationInputs, and returns numbers for both models on the
same prompts. The gate (domain/gate.py) judges the numbers; the report shows them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from services.evaluator.engine.models import ModelPair
from shared.evaluation.canaries import CanaryShape
from shared.evaluation.options import EvaluationOptions

# The methods whose artefact generates text: what every suite measures unless it says otherwise. A reward
# model (method reward_model) scores text and has its own suite.
GENERATIVE_METHODS = frozenset({"sft", "dpo", "cpt", "rlhf"})


@dataclass(frozen=True)
class RewardSetup:
    """What scored an rlhf policy during training: the job's options and the reward model, loaded."""

    options: Any  # shared.events.reinforcement.RlhfOptions
    model: Any | None  # the reward model (shared.models.reward), or None when the job uses rules only
    tokenizer: Any


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TextFinding:
    entity: str
    start: int
    end: int
    score: float


TextDetector = Callable[[Sequence[str]], list[list[TextFinding]]]
"""The scanner's detection engine over a batch of texts (PII leakage scans model outputs with it)."""


@dataclass
class EvaluationInputs:
    job_id: str
    risk_tier: str
    options: EvaluationOptions
    kind: str
    """Record format of the dataset: chat | prompt_completion | text | preference."""
    training_records: list[dict[str, Any]]
    """What the model was trained on (canaries included when the scanner planted them)."""
    held_out_records: list[dict[str, Any]]
    models: ModelPair | None
    """The fine-tuned model and its base; None for a reward model (it generates nothing)."""
    detector: TextDetector
    seed: int = 0
    canaries: list[str] = field(default_factory=list)
    """The planted secrets (derived from the canary key; never written anywhere)."""
    canary_shape: CanaryShape | None = None
    method_kind: str = "sft"
    reward_model: tuple[Any, Any] | None = None
    """method reward_model: (model, tokenizer) of the trained reward model (shared.models.reward)."""
    reward: RewardSetup | None = None
    """method rlhf: the reward the policy was trained against."""


@dataclass
class SuiteOutcome:
    metrics: dict[str, float | None]
    """Fine-tuned model. Names are the suite's own; the gate refers to them as `suite.metric`."""
    base_metrics: dict[str, float | None] = field(default_factory=dict)
    """The base model on the same prompts, for every metric where that is meaningful."""
    details: dict[str, Any] = field(default_factory=dict)
    """JSON-able; goes into the report only (examples as hashes, per-type tables, confidence intervals)."""
    histograms: dict[str, list[float]] = field(default_factory=dict)
    """Distributions the report charts (e.g. canary exposures)."""


class Suite(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[SuiteConfig]] = SuiteConfig
    methods: ClassVar[frozenset[str]] = GENERATIVE_METHODS
    """The job methods whose artefacts this suite can measure; for others it is skipped with the reason."""

    def __init__(self, config: SuiteConfig) -> None:
        self.config = config

    @abstractmethod
    def run(self, inputs: EvaluationInputs) -> SuiteOutcome: ...

    def applies_to(self, inputs: EvaluationInputs) -> str | None:
        """None when the suite can run on this job, else why not (reported, not failed)."""
        return None
