"""DP-SGD for LoRA runs with Opacus: per-sample clipping and Gaussian noise on the adapter weights only,
Poisson sampling, and the RDP accountant's epsilon at the end. Its own loop (the HF Trainer cannot host
Opacus' optimizer and data loader) reporting through the same TrainingRun as plain training, so progress,
checkpoints, cancel and resume behave alike."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from services.trainer.domain.progress import PrivacyGuaranteeVoid, TrainingCancelledError
from services.trainer.engine.data import tokenise
from services.trainer.engine.models import apply_lora, load_model, load_tokenizer
from services.trainer.engine.run import TrainedModel, TrainingRun, last_complete_checkpoint
from shared.training.hyperparameters import HyperParameters

STATE_FILE = "dp_state.pt"
DEFAULT_EPSILON_CAP = 1000.0


def epsilon_cap() -> float:
    """The largest epsilon a DP run may spend: the most intake accepts as dp_target_epsilon (read from its bound,
    so the two cannot drift apart). Past it, "differentially private" promises nothing."""
    for constraint in HyperParameters.model_fields["dp_target_epsilon"].metadata:
        for bound in ("le", "lt"):
            if (value := getattr(constraint, bound, None)) is not None:
                return float(value)
    return DEFAULT_EPSILON_CAP


def spent_epsilon(accountant: Any, delta: float) -> float:
    """The accountant's epsilon at `delta`; infinite where it cannot say (at a tiny noise multiplier Opacus' RDP
    conversion divides by zero or overflows)."""
    try:
        epsilon = float(accountant.get_epsilon(delta))
    except (ArithmeticError, ValueError):
        return math.inf
    return epsilon if not math.isnan(epsilon) else math.inf


def check_guarantee(epsilon: float, noise: float, delta: float, steps: int) -> None:
    """Raise PrivacyGuaranteeVoid unless `epsilon` is finite and within epsilon_cap()."""
    cap = epsilon_cap()
    if math.isfinite(epsilon) and epsilon <= cap:
        return
    spent = f"{epsilon:.6g}" if math.isfinite(epsilon) else "unbounded"
    raise PrivacyGuaranteeVoid(
        f"differential privacy: noise multiplier {noise:.4g} is too small for any meaningful privacy guarantee: "
        f"epsilon after {steps} steps is {spent} at delta {delta:g} (at most {cap:g} is accepted, as for "
        "dp_target_epsilon); raise dp_noise_multiplier or give dp_target_epsilon instead")


def _per_sample_loss(logits: Any, input_ids: Any, mask: Any) -> Any:
    """Mean token loss per sample, then mean over the batch: each sample's gradient is its own, which is
    what per-sample clipping assumes (a batch-wide token mean would mix samples by their lengths)."""
    import torch

    shift_logits = logits[:, :-1, :]
    targets = input_ids[:, 1:]
    weights = mask[:, 1:].to(shift_logits.dtype)
    token_loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    per_sample = (token_loss * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return per_sample.mean()


def _lr_factor(params: HyperParameters, at: int, total_steps: int) -> float:
    """The HF schedulers' shapes (warm-up, then constant, linear or cosine decay) for the hand-written loop."""
    if params.warmup_steps and at < params.warmup_steps:
        return (at + 1) / params.warmup_steps
    if params.lr_scheduler == "linear":
        return max(0.0, 1 - at / total_steps)
    if params.lr_scheduler == "cosine":
        return 0.5 * (1 + math.cos(math.pi * at / total_steps))
    return 1.0


class DifferentiallyPrivateTraining:
    """DP-SGD with Opacus' PrivacyEngine; the job's method validation guarantees LoRA and sft/cpt."""

    def train(self, run: TrainingRun) -> TrainedModel:
        import torch
        from opacus import PrivacyEngine
        from opacus.accountants.utils import get_noise_multiplier
        from torch.utils.data import DataLoader, TensorDataset

        job = run.job
        params = job.params
        total_steps = run.total_steps
        run_dir = run.run_dir
        tokenizer = load_tokenizer(job.base)
        rows = tokenise(tokenizer, job.dataset.kind, job.dataset.records, params.max_seq_length).rows
        width = max(len(r["input_ids"]) for r in rows)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows])
        loss_mask = torch.tensor([r["completion_mask"] + [0] * (width - len(r["input_ids"])) for r in rows])
        attention = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])

        torch.manual_seed(job.seed)
        model = apply_lora(load_model(job.base, job.seed), params, job.seed)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate,
                                      weight_decay=params.weight_decay)
        sample_rate = params.batch_size / len(rows)
        noise = params.dp_noise_multiplier or get_noise_multiplier(
            target_epsilon=params.dp_target_epsilon, target_delta=params.dp_delta, sample_rate=sample_rate,
            steps=total_steps, accountant="rdp",
        )
        generator = torch.Generator().manual_seed(job.seed)
        loader = DataLoader(TensorDataset(ids, attention, loss_mask), batch_size=params.batch_size,
                            generator=generator)
        # Before any step: a noise multiplier whose planned run (every step charged, as the Poisson-sampling
        # analysis has it) spends a meaningless epsilon is refused without training; the same check runs on the
        # accountant's epsilon once the run is over.
        from opacus.accountants import RDPAccountant

        planned = RDPAccountant()
        planned.history = [(noise, sample_rate, total_steps)]
        check_guarantee(spent_epsilon(planned, params.dp_delta), noise, params.dp_delta, total_steps)
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        private_model, private_optimizer, private_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise,
            max_grad_norm=params.dp_max_grad_norm, poisson_sampling=True,
            noise_generator=torch.Generator().manual_seed(job.seed + 1),
        )

        step = 0
        resume = last_complete_checkpoint(run_dir)
        if resume is not None:
            state = torch.load(resume / STATE_FILE, weights_only=False)
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(str(resume / "adapter_model.safetensors")))
            private_optimizer.original_optimizer.load_state_dict(state["optimizer"])
            engine.accountant.load_state_dict(state["accountant"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            step = int(state["step"])
        resumed_from = step
        run.begin(resumed_from)
        tokens = 0
        window: list[float] = []

        while step < total_steps:
            for batch_ids, batch_attention, batch_mask in private_loader:
                if step >= total_steps:
                    break
                if run.cancel_requested():
                    raise TrainingCancelledError(step)
                for group in private_optimizer.param_groups:
                    group["lr"] = params.learning_rate * _lr_factor(params, step, total_steps)
                if len(batch_ids) == 0:
                    _noise_only_step(private_optimizer)
                    step += 1
                    continue
                logits = private_model(input_ids=batch_ids, attention_mask=batch_attention).logits
                loss = _per_sample_loss(logits, batch_ids, batch_mask)
                loss.backward()
                private_optimizer.step()
                private_optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens += int(batch_attention.sum())
                window.append(float(loss.detach()))
                if step % params.logging_steps == 0 or step == total_steps:
                    mean_loss = sum(window) / len(window)
                    window.clear()
                    run.logged(step, mean_loss, tokens,
                               learning_rate=params.learning_rate * _lr_factor(params, step, total_steps))
                if step % params.save_steps == 0 and step < total_steps:
                    run.before_checkpoint(step)
                    directory = run_dir / f"checkpoint-{step}"
                    _save_state(directory, model, private_optimizer, engine, generator, step)
                    run.checkpoint_saved(directory, step)
                    for old in run_dir.glob("checkpoint-*"):
                        if old != directory:
                            shutil.rmtree(old, ignore_errors=True)

        epsilon = spent_epsilon(engine.accountant, params.dp_delta)
        check_guarantee(epsilon, noise, params.dp_delta, step)
        history = run.history
        metrics = {
            "steps": float(step), "tokens_seen": float(tokens), "records": float(len(rows)),
            "dp_noise_multiplier": float(noise), "dp_sample_rate": sample_rate,
        }
        if history:  # no loss is logged when every Poisson batch came out empty: the metric is left out
            metrics["final_loss"], metrics["first_loss"] = history[-1][1], history[0][1]
        report = {
            "epsilon": epsilon, "delta": params.dp_delta, "noise_multiplier": noise,
            "max_grad_norm": params.dp_max_grad_norm, "sample_rate": sample_rate, "steps": step,
            "accountant": "rdp",
        }

        def save(directory: Path) -> None:
            model.save_pretrained(str(directory))
            tokenizer.save_pretrained(str(directory))
            (directory / "dp_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))

        return TrainedModel(save=save, metrics=metrics, resumed_from_step=resumed_from, epsilon=epsilon,
                            delta=params.dp_delta)


def _save_state(directory: Path, model: Any, optimizer: Any, engine: Any, generator: Any, step: int) -> None:
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    torch.save({
        "optimizer": optimizer.original_optimizer.state_dict(),
        "accountant": engine.accountant.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "step": step,
    }, directory / STATE_FILE)


def _noise_only_step(optimizer: Any) -> None:
    """The DP step of an empty Poisson batch: noise alone is added to the weights and the accountant charges
    the step. Skipping it (as this loop once did) left the accountant a step short, so the reported epsilon
    was lower than the one spent, and made whether a step moved the weights depend on whether any record was
    drawn. Opacus clips an empty batch of per-sample gradients to zero (DPOptimizer.clip_and_accumulate), so
    each trainable parameter gets an empty one."""
    import torch

    for param in optimizer.params:
        param.grad_sample = torch.zeros((0, *param.shape), dtype=param.dtype, device=param.device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
