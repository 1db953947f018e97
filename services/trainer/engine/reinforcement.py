"""RLHF's two methods, each on the TRL trainers' own loop (PlainTraining: progress, cancel, lease checks and
crash-safe resume as for SFT and DPO):

- reward_model: a sequence-classification head (one score) on the base, trained with TRL's RewardTrainer on
  preference pairs (TRL or OpenAI DPO format), LoRA or full;
- rlhf: the policy optimised with GRPO or RLOO (method.rlhf.algorithm) against an approved reward-model
  version and/or the job's rule-based rewards, the KL to the starting policy logged every step and bounded.
  The policy starts from the base (a fresh LoRA adapter or the full model) or from an approved SFT version
  (method.rlhf.policy_version): its LoRA adapter on the base is the one trained on, and TRL keeps a frozen
  copy of it as the reference, so the KL is measured to the SFT policy, not to the base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.trainer.domain.kl_bound import KlGuard
from services.trainer.engine.data import as_messages, preference_rows
from services.trainer.engine.models import apply_lora, load_model, load_tokenizer, lora_config
from services.trainer.engine.plain import PlainTraining, common_args
from services.trainer.engine.run import TrainedModel, TrainingJob, TrainingRun
from shared.datasets import DatasetError
from shared.events.reinforcement import RlhfOptions
from shared.models.reward import load_reward_model
from shared.training.rewards import Scorer, completion_text, rule_rewards

REWARD_MODEL_METRICS = ("accuracy", "margin", "mean_reward")
RLHF_METRICS = ("reward", "reward_std", "kl", "completions/mean_length")


# ------------------------------------------------------------------------------------------ reward model


def build_reward_trainer(job: TrainingJob, run_dir: Path, total_steps: int,
                         callbacks: list[Any]) -> tuple[Any, Any]:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tokenizer = load_tokenizer(job.base)
    model = load_reward_model(job.base, seed=job.seed)
    peft = lora_config(job.params, task_type="SEQ_CLS") if job.method.adapter == "lora" else None
    trainer = RewardTrainer(
        model=model, args=RewardConfig(**common_args(job, run_dir, total_steps)),
        train_dataset=Dataset.from_list(preference_rows(job.dataset.records)), processing_class=tokenizer,
        callbacks=callbacks, peft_config=peft,
    )
    return trainer, tokenizer


def reward_model_training() -> PlainTraining:
    return PlainTraining(build_reward_trainer, REWARD_MODEL_METRICS)


# ------------------------------------------------------------------------------------------ rlhf


def prompt_of(record: dict[str, Any]) -> Any:
    """What the policy is asked: the prompt of a prompt/completion or TRL preference record, the input of an
    OpenAI preference record, a chat's messages before its last assistant turn."""
    if "prompt" in record:
        return record["prompt"]
    if "input" in record:
        return as_messages(record["input"].get("messages", []), "user")
    messages = as_messages(record["messages"], "user")
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    if last == 0:
        raise DatasetError("a chat record opens with an assistant turn: it has no prompt to sample from")
    return messages[:last]


def prompt_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"prompt": prompt_of(record)} for record in records]


def named_reward(name: str, scorer: Scorer) -> Any:
    """A TRL reward function: TRL logs each by its __name__ (rewards/<name>/mean)."""
    def reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        return [scorer(completion_text(c)) for c in completions]

    reward.__name__ = name
    return reward


def reward_functions(job: TrainingJob, options: RlhfOptions) -> tuple[list[Any], list[float], list[Any]]:
    """(reward functions, weights, processing classes) as TRL takes them: each rule, then the reward model."""
    funcs: list[Any] = []
    weights: list[float] = []
    for name, weight, scorer in rule_rewards(options):
        funcs.append(named_reward(name, scorer))
        weights.append(weight)
    if options.reward_model_version is not None:
        if job.reward_model_dir is None:
            raise ValueError(f"method.rlhf.reward_model_version {options.reward_model_version}: its artefact "
                             "was not delivered with training.requested")
        funcs.append(load_reward_model(job.base, job.reward_model_dir))
        weights.append(1.0)
    tokenizer = load_tokenizer(job.base)
    return funcs, weights, [tokenizer] * len(funcs)


def rl_args(job: TrainingJob, run_dir: Path, total_steps: int, options: RlhfOptions) -> dict[str, Any]:
    args = common_args(job, run_dir, total_steps)
    args.pop("max_length")  # the sampled completion's length is bounded instead
    args.pop("include_num_input_tokens_seen")  # counts prompts only: tokens/s comes from completions below
    # Every prompt is sampled num_generations times: the batch is a whole number of groups, as many prompts per
    # step as HyperParameters.records_per_step counts (so `epochs` means every prompt sampled once per epoch).
    groups = job.params.records_per_step(options.num_generations) // job.params.gradient_accumulation_steps
    args.update(
        per_device_train_batch_size=groups * options.num_generations,
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_tokens,
        temperature=options.temperature,
        beta=job.params.beta,
        reward_weights=None,  # set by the caller once the reward functions are known
        shuffle_dataset=True,
    )
    return args


def load_start_policy(base_model: Any, job: TrainingJob) -> Any:
    """The starting SFT version's adapter on the base, trainable. Given a PeftModel, the RL trainers copy its
    adapter into a frozen "ref" adapter and take the reference log-probabilities from it."""
    import torch
    from peft import PeftModel

    assert job.policy_dir is not None
    if not (job.policy_dir / "adapter_config.json").is_file():
        raise ValueError(f"method.rlhf.policy_version {job.method.rlhf and job.method.rlhf.policy_version}: its "
                         "artefact holds no LoRA adapter (adapter_config.json)")
    torch.manual_seed(job.seed)
    return PeftModel.from_pretrained(base_model, str(job.policy_dir), is_trainable=True)


def without_reference_adapter(trainer: Any) -> None:
    """Drop TRL's frozen "ref" copy before the final save: the policy's artefact is its one trained adapter."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")


def build_rl_trainer(job: TrainingJob, run_dir: Path, total_steps: int, callbacks: list[Any]) -> tuple[Any, Any]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    options = job.method.rlhf
    if options is None:
        raise ValueError("method.kind rlhf without method.rlhf options")
    tokenizer = load_tokenizer(job.base)
    tokenizer.padding_side = "left"  # prompts are left-padded for generation
    model = load_model(job.base, job.seed)
    if job.policy_dir is not None:
        model = load_start_policy(model, job)
    elif job.method.adapter == "lora":
        model = apply_lora(model, job.params, job.seed)
    funcs, weights, processors = reward_functions(job, options)
    args = rl_args(job, run_dir, total_steps, options) | {"reward_weights": weights}
    config_type, trainer_type = (GRPOConfig, GRPOTrainer) if options.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    trainer = trainer_type(
        model=model, reward_funcs=funcs, args=config_type(**args),
        train_dataset=Dataset.from_list(prompt_rows(job.dataset.records)), processing_class=tokenizer,
        reward_processing_classes=processors, callbacks=callbacks,
    )
    return trainer, tokenizer


class RlhfTraining(PlainTraining):
    """PlainTraining with the RL trainer and the job's KL bound watching every logged step."""

    def __init__(self, options: RlhfOptions) -> None:
        self.guard = KlGuard(options.kl_bound, options.on_kl_exceeded)
        self.rewards: list[float] = []
        super().__init__(build_rl_trainer, RLHF_METRICS, self._watch)

    def _watch(self, step: int, logs: dict[str, float]) -> bool:
        if "reward" in logs:
            self.rewards.append(float(logs["reward"]))
        return "kl" in logs and self.guard.observe(step, float(logs["kl"]))

    def train(self, run: TrainingRun) -> TrainedModel:
        trained = super().train(run)
        save = trained.save

        def save_policy(directory: Path) -> None:
            without_reference_adapter(self.trainer)
            save(directory)

        trained.save = save_policy
        trained.metrics["kl_max"] = self.guard.highest
        trained.metrics["kl_bound"] = self.guard.bound
        if self.rewards:
            trained.metrics["reward_first"], trained.metrics["reward_last"] = self.rewards[0], self.rewards[-1]
        if self.guard.exceeded_at is not None:
            trained.metrics["kl_stopped_at_step"] = float(self.guard.exceeded_at)
        return trained
