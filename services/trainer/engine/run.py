"""One training run as every strategy sees it: the job, the hooks it reports through, and the bookkeeping
all strategies share (progress events, loss history, checkpoint completion markers, cancel polling)."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from services.trainer.domain.progress import ThroughputMeter, TrainingDiverged
from shared.datasets.loaded import LoadedDataset
from shared.events.payloads import MethodSpec, TrainingProgress
from shared.models.bases import BaseModelInfo
from shared.training.hyperparameters import HyperParameters

COMPLETE_MARKER = "tunegate_checkpoint.json"
RUN_DIR = "run"  # under the job's workdir: the trainers' output_dir, where the checkpoints are written


class TrainingHooks(Protocol):
    def started(self, resumed_from_step: int, total_steps: int) -> None: ...
    def progress(self, progress: TrainingProgress) -> None: ...
    def before_checkpoint(self, step: int) -> None: ...  # raises LeaseLost when this worker lost the job
    def checkpointed(self, step: int, directory: Path) -> None: ...
    def cancel_requested(self) -> bool: ...


class SilentHooks:
    """Hooks that report nowhere and never cancel: training outside the service (tests, benchmarks)."""

    def started(self, resumed_from_step: int, total_steps: int) -> None: ...
    def progress(self, progress: TrainingProgress) -> None: ...
    def before_checkpoint(self, step: int) -> None: ...
    def checkpointed(self, step: int, directory: Path) -> None: ...
    def cancel_requested(self) -> bool:
        return False


@dataclass
class TrainingJob:
    job_id: str
    base: BaseModelInfo
    method: MethodSpec
    params: HyperParameters
    seed: int
    dataset: LoadedDataset
    workdir: Path
    reward_model_dir: Path | None = None  # rlhf: the unpacked artefact of the approved reward-model version
    policy_dir: Path | None = None  # rlhf: the unpacked adapter of the approved SFT version the policy starts from
    # Where the trainer's loop runs: "cpu" in the worker; a data-parallel rank on a GPU node sets "cuda"
    # (engine/distributed.py), so the same job option trains on GPUs with NCCL.
    device: str = "cpu"


@dataclass
class TrainingOutcome:
    model_dir: Path
    metrics: dict[str, float]
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    resumed_from_step: int = 0
    epsilon: float | None = None
    delta: float | None = None
    held_out: tuple[int, ...] = ()
    total_records: int = 0


@dataclass
class TrainedModel:
    """What a strategy hands back once its loop has run to the last step."""

    save: Callable[[Path], None]  # writes the final model (and anything that must travel with it) into a dir
    metrics: dict[str, float]
    resumed_from_step: int
    epsilon: float | None = None
    delta: float | None = None


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """Newest checkpoint whose save finished (we write the marker after the trainer's save returns); a
    half-written one from a killed worker is removed so it cannot be picked up later."""
    if not run_dir.exists():
        return None
    best: tuple[int, Path] | None = None
    for path in run_dir.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if not suffix.isdigit():
            continue
        if not (path / COMPLETE_MARKER).exists():
            shutil.rmtree(path, ignore_errors=True)
            continue
        if best is None or int(suffix) > best[0]:
            best = (int(suffix), path)
    return best[1] if best else None


def mark_checkpoint_complete(directory: Path, step: int) -> None:
    (directory / COMPLETE_MARKER).write_text(json.dumps({"step": step}))


def _non_finite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def finite_or_none(value: float | None) -> float | None:
    """A metric as the wire can carry it: JSON has no NaN or infinity, so a non-finite value is left out."""
    return value if value is not None and math.isfinite(value) else None


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics whose values are finite: a NaN or inf would make training.completed unreadable to every
    consumer (Envelope.from_wire refuses it), so such a metric is omitted rather than sent."""
    return {key: float(value) for key, value in metrics.items() if math.isfinite(value)}


def count_non_finite_tensors(directory: Path) -> tuple[int, int]:
    """(tensors holding a NaN or inf, floating-point tensors) over the weight files saved in `directory`."""
    import torch
    from safetensors import safe_open

    bad = total = 0
    for path in sorted(directory.rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point():
                    total += 1
                    bad += int(not bool(torch.isfinite(tensor).all()))
    for path in sorted(directory.rglob("*.bin")):
        if path.name == "training_args.bin":
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        for tensor in state.values() if isinstance(state, dict) else ():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                total += 1
                bad += int(not bool(torch.isfinite(tensor).all()))
    return bad, total


def check_weights_finite(directory: Path) -> None:
    """Raise TrainingDiverged unless every trained weight saved in `directory` is finite."""
    bad, total = count_non_finite_tensors(directory)
    what = "adapter" if (directory / "adapter_config.json").exists() else "model"
    if bad:
        raise TrainingDiverged(f"training diverged: {bad} of {total} {what} tensors are NaN/inf")


def normalise_saved_model(directory: Path, base_name: str) -> None:
    """Strip what would differ between identical runs (local paths, generated cards). training_args.bin
    pickles the output path; the hyperparameters travel in training.completed instead."""
    (directory / "README.md").unlink(missing_ok=True)
    if not directory.name.startswith("checkpoint-"):
        (directory / "training_args.bin").unlink(missing_ok=True)
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists():
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = base_name
        adapter_config.write_text(json.dumps(data, indent=2, sort_keys=True))


class TrainingRun:
    """A job's run in progress: every strategy reports its start, logged losses and saved checkpoints here,
    and asks here whether to stop, so events, history and checkpoint markers are the same whatever the loop."""

    def __init__(self, job: TrainingJob, hooks: TrainingHooks) -> None:
        self.job = job
        self.hooks = hooks
        self.total_steps = job.params.total_steps(len(job.dataset.records), job.method.samples_per_record)
        self.run_dir = job.workdir / RUN_DIR
        self.history: list[tuple[int, float]] = []
        self._meter: ThroughputMeter | None = None

    def begin(self, step: int, tokens: int = 0) -> None:
        """Start (or resume at `step`): only steps trained from here on count towards tokens/s and ETA."""
        self._meter = ThroughputMeter(self.total_steps, time.monotonic(), step, tokens)
        self.hooks.started(step, self.total_steps)

    def cancel_requested(self) -> bool:
        return self.hooks.cancel_requested()

    def logged(self, step: int, loss: float, tokens: int, *, learning_rate: float | None,
               epoch: float | None = None, reward: float | None = None, kl: float | None = None) -> None:
        """A loss was logged at `step` with `tokens` seen in total: record it and publish progress."""
        if self._meter is None:
            raise RuntimeError(f"job {self.job.job_id}: loss logged at step {step} before the run began")
        # A diverged run stops here, before the value reaches an event (JSON has no NaN) or the loss curve.
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged: loss became {_non_finite(loss)} at step {step}")
        if kl is not None and not math.isfinite(kl):
            raise TrainingDiverged(f"training diverged: KL became {_non_finite(kl)} at step {step}")
        learning_rate, epoch, reward = finite_or_none(learning_rate), finite_or_none(epoch), finite_or_none(reward)
        self.history.append((step, loss))
        tokens_per_s, eta = self._meter.sample(time.monotonic(), step, tokens)
        self.hooks.progress(TrainingProgress(
            job_id=self.job.job_id, step=step, total_steps=self.total_steps, loss=loss,
            learning_rate=learning_rate, tokens_per_s=tokens_per_s, eta_s=eta, epoch=epoch, reward=reward, kl=kl,
        ))

    def before_checkpoint(self, step: int) -> None:
        self.hooks.before_checkpoint(step)

    def checkpoint_saved(self, directory: Path, step: int) -> None:
        """The strategy finished writing `directory`: only now does it count as resumable."""
        normalise_saved_model(directory, self.job.base.name)
        mark_checkpoint_complete(directory, step)
        self.hooks.checkpointed(step, directory)
