"""The training engine's entry point: pick the strategy the job's method calls for, run it under the shared
TrainingRun bookkeeping, and write the final model. Runs in a worker thread; everything it reports leaves
through the TrainingHooks it is given."""

from __future__ import annotations

import math
import shutil
from typing import Protocol

from services.trainer.domain.progress import PrivacyGuaranteeVoid
from services.trainer.engine.distributed import DistributedTraining
from services.trainer.engine.dp_sgd import DifferentiallyPrivateTraining
from services.trainer.engine.plain import PlainTraining
from services.trainer.engine.reinforcement import RlhfTraining, reward_model_training
from services.trainer.engine.run import (
    TrainedModel,
    TrainingHooks,
    TrainingJob,
    TrainingOutcome,
    TrainingRun,
    check_weights_finite,
    finite_metrics,
    normalise_saved_model,
)
from shared.events.payloads import MethodSpec
from shared.models.bases import configure_offline

FINAL_DIR = "final"


class TrainingStrategy(Protocol):
    def train(self, run: TrainingRun) -> TrainedModel:
        """Train (or resume) to run.total_steps, reporting through `run`; raise TrainingCancelledError when
        run.cancel_requested() says so."""
        ...


def strategy_for(method: MethodSpec, workers: int = 1) -> TrainingStrategy:
    if workers > 1:
        # Validation admits workers > 1 only for the PlainTraining methods (sft, cpt, dpo), which each rank runs.
        return DistributedTraining()
    if method.differential_privacy:
        return DifferentiallyPrivateTraining()
    if method.kind == "reward_model":
        return reward_model_training()
    if method.kind == "rlhf" and method.rlhf is not None:
        return RlhfTraining(method.rlhf)
    return PlainTraining()


def run_training(job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome:
    """Train (or resume) the job; raise TrainingCancelledError on cancel, LeaseLost if the job moved,
    TrainingDiverged when a logged loss or a saved weight is NaN/inf (nothing non-finite is ever returned)."""
    configure_offline()
    run = TrainingRun(job, hooks)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    trained = strategy_for(job.method, job.params.workers).train(run)
    if trained.epsilon is not None and not math.isfinite(trained.epsilon):
        raise PrivacyGuaranteeVoid(f"differential privacy: the accountant's epsilon is {trained.epsilon}: the run "
                                   "has no meaningful privacy guarantee")
    final_dir = job.workdir / FINAL_DIR
    if final_dir.exists():
        shutil.rmtree(final_dir)
    trained.save(final_dir)
    normalise_saved_model(final_dir, job.base.name)
    # What ships is what was saved: check those files, whatever the strategy (a rank's model arrives as files).
    check_weights_finite(final_dir)
    return TrainingOutcome(model_dir=final_dir, metrics=finite_metrics(trained.metrics), loss_history=run.history,
                           resumed_from_step=trained.resumed_from_step, epsilon=trained.epsilon,
                           delta=trained.delta, held_out=job.dataset.held_out,
                           total_records=job.dataset.total_records or len(job.dataset.records))
