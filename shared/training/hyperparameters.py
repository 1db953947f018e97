"""Hyperparameters of a training job, validated before any model is loaded.

Every rejection names the key, the value and the reason, and all problems are reported together so a
requester fixes a job in one round trip. Defaults are sized for the CI/demo `tiny` base on CPU.

`validate_hyperparameters` is the one check: the registry applies it to a job spec at intake (a job that
could never train is rejected before it is approved), and `training.requested` carries the result typed,
validated by the same function, so the trainer receives only hyperparameters that fit the method."""

from __future__ import annotations

import math
from typing import Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from shared.validation import validation_problems

DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_KEYS = frozenset({"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"})
DP_KEYS = frozenset({"dp_target_epsilon", "dp_delta", "dp_max_grad_norm", "dp_noise_multiplier"})
# Which dataset record kinds each method can learn from.
METHOD_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("chat", "prompt_completion"),
    "dpo": ("preference",),
    "cpt": ("text",),
    "reward_model": ("preference",),
    # RLHF samples its own completions: it reads only the prompt of each record.
    "rlhf": ("prompt_completion", "chat", "preference"),
}
# Data-parallel ranks one job may span. Each rank is a process holding a full model replica, so beyond a
# node's accelerators (8 GPUs is the usual node) a job wants more nodes, not more ranks per worker.
MAX_WORKERS = 64
# Methods trained data-parallel (workers > 1): the TRL loops whose loss and logged metrics are the same under
# DDP. GRPO/RLOO sample a per-rank generation batch and reward models were not checked across ranks, and
# Opacus' accountant counts one process's noisy steps, so those stay on one process.
DISTRIBUTED_METHODS = ("sft", "cpt", "dpo")
# Methods whose loss has a KL coefficient to a reference policy (DPO's beta; the RLHF trainers' KL penalty).
BETA_METHODS = ("dpo", "rlhf")


class TrainingMethod(Protocol):
    """What the checks need of a job's method (shared.events.payloads.MethodSpec has these fields)."""

    @property
    def kind(self) -> str: ...

    @property
    def adapter(self) -> str: ...

    @property
    def differential_privacy(self) -> bool: ...


class HyperparameterError(ValueError):
    """Hyperparameters that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str], what: str = "invalid hyperparameters") -> None:
        self.problems = problems
        super().__init__(f"{what}: " + "; ".join(problems))


MAX_SEED = 2**32 - 1
"""numpy's and the data splitter's generators take seeds up to this; a larger one failed only after approval."""


class HyperParameters(BaseModel):
    # allow_inf_nan=False: `.inf` in YAML passed every `gt=0` bound, then became null on the wire. Strings are
    # still converted (PyYAML reads `2e-4` as a string), booleans are not (`max_steps: true` was 1).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if isinstance(value, bool) and field is not None and field.annotation not in (bool, bool | None):
                    raise ValueError(f"{key}: {value} is a boolean; give a number")
        return data

    max_steps: int | None = Field(default=None, ge=1, le=1_000_000, description="Optimizer steps; or epochs.")
    epochs: float | None = Field(default=None, gt=0, le=1000)
    learning_rate: float = Field(default=2e-3, gt=0, le=1.0)
    batch_size: int = Field(default=8, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    max_seq_length: int = Field(default=256, ge=8, le=131_072)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000)
    weight_decay: float = Field(default=0.0, ge=0, le=1.0)
    max_grad_norm: float = Field(default=1.0, gt=0, le=10_000)
    logging_steps: int = Field(default=5, ge=1, le=1_000_000, description="A training.progress event every N steps.")
    save_steps: int = Field(default=25, ge=1, le=1_000_000, description="A checkpoint every N steps.")
    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_alpha: float = Field(default=32.0, gt=0, le=4096,
                              description="LoRA scale is alpha/r: 1e308 made every adapter weight NaN.")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES), min_length=1)
    beta: float = Field(default=0.1, gt=0, le=100, description="DPO beta; rlhf: the KL penalty's coefficient.")
    dp_target_epsilon: float | None = Field(default=None, gt=0, le=1000)
    dp_delta: float = Field(default=1e-5, gt=0, lt=1)
    dp_max_grad_norm: float = Field(default=1.0, gt=0, le=10_000)
    dp_noise_multiplier: float | None = Field(
        default=None, ge=0.1, le=1000,
        description="Below 0.1 no run has a meaningful epsilon, and at 1e-300 the accountant divided by zero.")
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS,
                         description="Data-parallel ranks (torch.distributed); each takes batch_size/workers "
                                     "records per step, so the effective batch stays batch_size.")

    @model_serializer(mode="wrap")
    def _as_requested(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the keys the requester gave: a key set for the wrong method must still be seen by whoever
        validates the serialised form, and defaults stay the reader's to fill in."""
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}

    def resolved(self) -> dict[str, Any]:
        """Every value the run uses, defaults included (what training.completed records)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: list(value) if isinstance(value, list) else value for name, value in values.items()}

    def records_per_step(self, samples_per_record: int = 1) -> int:
        """Records one optimizer step learns from. batch_size counts training rows; an RLHF row is one sampled
        completion and every prompt is sampled `samples_per_record` times (a group), so a step takes
        batch_size // group prompts, at least one whole group (the RL trainers' batch is whole groups)."""
        return max(1, self.batch_size // samples_per_record) * self.gradient_accumulation_steps

    def total_steps(self, n_records: int, samples_per_record: int = 1) -> int:
        """max_steps, or `epochs` passes over the records: an epoch is every record learnt from once (for RLHF,
        every prompt sampled once as a group of `samples_per_record` completions)."""
        if self.max_steps is not None:
            return self.max_steps
        per_epoch = math.ceil(n_records / self.records_per_step(samples_per_record))
        return max(1, math.ceil(per_epoch * (self.epochs or 1.0)))


def validate_hyperparameters(raw: dict[str, Any] | HyperParameters, method: TrainingMethod) -> HyperParameters:
    """Parse the requested hyperparameters and check they fit the method; raise HyperparameterError."""
    if isinstance(raw, HyperParameters):
        raw = raw.model_dump()
    try:
        params = HyperParameters.model_validate(raw)
    except ValidationError as exc:
        raise HyperparameterError(
            validation_problems(
                exc,
                root="hyperparameters",
                prefix="hyperparameters.",
                known_fields=HyperParameters.model_fields,
                show_input=True,
            )
        ) from None
    given = set(raw)
    problems: list[str] = []
    if params.max_steps is not None and params.epochs is not None:
        problems.append("hyperparameters: give max_steps or epochs, not both")
    if method.adapter != "lora" and (stray := sorted(given & LORA_KEYS)):
        problems.append(
            f"hyperparameters.{stray[0]}: LoRA settings need method.adapter=lora "
            f"(adapter is {method.adapter}; remove {', '.join(stray)})"
        )
    if method.kind not in BETA_METHODS and "beta" in given:
        problems.append(f"hyperparameters.beta: only dpo and rlhf use beta (method.kind is {method.kind})")
    stray_dp = sorted(given & DP_KEYS)
    if not method.differential_privacy and stray_dp:
        problems.append(f"hyperparameters.{stray_dp[0]}: DP settings need method.differential_privacy=true")
    if method.differential_privacy:
        if method.adapter != "lora":
            problems.append(
                "method.differential_privacy: DP-SGD is supported for LoRA runs only "
                "(per-sample gradients of every weight do not fit in memory)"
            )
        if method.kind not in ("sft", "cpt"):
            problems.append(f"method.differential_privacy: DP-SGD is supported for sft and cpt, not {method.kind}")
        if (params.dp_target_epsilon is None) == (params.dp_noise_multiplier is None):
            problems.append("hyperparameters: DP needs exactly one of dp_target_epsilon or dp_noise_multiplier")
        if params.gradient_accumulation_steps != 1:
            problems.append(
                "hyperparameters.gradient_accumulation_steps: must be 1 with DP-SGD "
                "(the privacy accountant counts one noisy step per batch)"
            )
    if params.workers > 1:
        problems.extend(_distributed_problems(params, method))
    if problems:
        raise HyperparameterError(problems)
    return params


def _distributed_problems(params: HyperParameters, method: TrainingMethod) -> list[str]:
    """workers > 1 keeps the single-process run's effective batch (batch_size per rank step summed over the
    ranks), so batch_size must split evenly, and only the methods checked under DDP may use it."""
    problems: list[str] = []
    if params.batch_size % params.workers:
        problems.append(
            f"hyperparameters.workers: batch_size {params.batch_size} does not split evenly over {params.workers} "
            f"workers (each rank takes batch_size/workers records per step)"
        )
    if method.differential_privacy:
        problems.append("hyperparameters.workers: DP-SGD runs on one process (its accountant counts one process's "
                        "noisy steps); remove workers or differential_privacy")
    elif method.kind not in DISTRIBUTED_METHODS:
        problems.append(f"hyperparameters.workers: data-parallel training supports {', '.join(DISTRIBUTED_METHODS)}, "
                        f"not {method.kind}")
    return problems


def check_data_fits(method: TrainingMethod, params: HyperParameters, record_kind: str, n_records: int) -> None:
    """Method/data compatibility, known only once the dataset is read."""
    problems: list[str] = []
    allowed = METHOD_FORMATS[method.kind]
    if n_records == 0:  # an empty dataset holds no kind of record: saying it holds "text" records misled
        raise HyperparameterError(["dataset: no records to train on"], "the dataset does not fit the job")
    if record_kind not in allowed:
        problems.append(
            f"dataset: method {method.kind} needs {' or '.join(allowed)} records, "
            f"the dataset holds {record_kind} records"
        )
    if method.differential_privacy and n_records and params.dp_delta >= 1.0 / n_records:
        problems.append(
            f"hyperparameters.dp_delta: {params.dp_delta} must be below 1/records "
            f"= {1.0 / n_records:.3g}, else DP guarantees nothing"
        )
    if method.differential_privacy and n_records and params.batch_size > n_records:
        problems.append(
            f"hyperparameters.batch_size: {params.batch_size} exceeds the {n_records} records "
            "(the DP sample rate would exceed 1)"
        )
    if problems:
        raise HyperparameterError(problems, "the dataset does not fit the job")


def split_seed(raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A job spec may carry its `seed` among the hyperparameters; training.requested carries it apart.
    Returns (seed, the other hyperparameters); raises HyperparameterError for a seed that is not an int in
    0..MAX_SEED."""
    rest = {key: value for key, value in raw.items() if key != "seed"}
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise HyperparameterError([f"hyperparameters.seed: must be an integer from 0 to {MAX_SEED}, got {seed!r}"])
    return seed, rest
