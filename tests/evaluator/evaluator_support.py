"""Evaluator test helpers: train the `tiny` base on a handful of records (the trainer's own engine, no
bus), and build the EvaluationInputs a suite sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.evaluator.adapters.detection import scanner_detector
from services.evaluator.engine.models import ModelPair, load_pair
from services.evaluator.suites.base import EvaluationInputs, TextDetector
from services.trainer.engine.loop import run_training
from services.trainer.engine.run import SilentHooks, TrainingJob
from shared.datasets import RecordHasher
from shared.datasets.loaded import LoadedDataset
from shared.evaluation.canaries import CanaryShape
from shared.evaluation.options import EvaluationOptions
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo
from shared.training.hyperparameters import validate_hyperparameters


def train(base: BaseModelInfo, workdir: Path, records: list[dict[str, Any]], kind: str, *,
          method: MethodSpec | None = None, hyperparameters: dict[str, Any] | None = None, seed: int = 0) -> Path:
    """Train and return the final model directory (LoRA adapter or full weights)."""
    method = method or MethodSpec(kind="sft" if kind in ("chat", "prompt_completion") else "cpt", adapter="lora")
    params = validate_hyperparameters({"max_steps": 40, "batch_size": 8, "save_steps": 1000,
                                       **(hyperparameters or {})}, method)
    hasher = RecordHasher()
    for record in records:
        hasher.add(record)
    job = TrainingJob(job_id="job_evaltest", base=base, method=method, params=params, seed=seed,
                      dataset=LoadedDataset(kind=kind, records=records, fingerprint=hasher.hexdigest()),
                      workdir=workdir)
    return run_training(job, SilentHooks()).model_dir


_DETECTOR: list[TextDetector] = []


def detector() -> TextDetector:
    """The scanner's detection engine without NER (fast; built once per test process)."""
    if not _DETECTOR:
        _DETECTOR.append(scanner_detector(ner=False))
    return _DETECTOR[0]


def inputs_for(base: BaseModelInfo, model_dir: Path, records: list[dict[str, Any]], kind: str, *,
               held_out: list[dict[str, Any]] | None = None, canaries: list[str] | None = None,
               shape: CanaryShape | None = None, risk_tier: str = "minimal",
               options: EvaluationOptions | None = None, pair: ModelPair | None = None) -> EvaluationInputs:
    return EvaluationInputs(
        job_id="job_evaltest", risk_tier=risk_tier, options=options or EvaluationOptions(), kind=kind,
        training_records=records, held_out_records=held_out or [], models=pair or load_pair(base, model_dir),
        detector=detector(), seed=0, canaries=canaries or [], canary_shape=shape,
    )
