"""Exact unlearning by retraining: the stored dataset minus one subject's records (lineage.without_records,
what an erasure's retraining job trains on) trains a fresh LoRA adapter on the `tiny` base. The time it took
is printed (docs/erasure.md quotes it): retraining an adapter is cheap next to retraining a model."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from services.registry.erasure import lineage
from services.trainer.engine.loop import run_training
from services.trainer.engine.run import TrainingJob
from shared.datasets.loaded import load_dataset
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo
from shared.storage.artifacts import ArtifactStore
from shared.training.hyperparameters import validate_hyperparameters
from tests.trainer.test_training import NullHooks
from tests.trainer.trainer_data import chat_records

pytestmark = pytest.mark.slow


def test_retraining_without_the_subject_is_a_cheap_lora_run(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    records = [
        {**r, "customer_id": "cust-ann" if i % 4 == 0 else "cust-bob"} for i, r in enumerate(chat_records(48, 1))
    ]
    lines = [json.dumps(r).encode() for r in records]
    store = ArtifactStore(tmp_path / "artifacts")
    stored = store.put_bytes(b"".join(line + b"\n" for line in lines))
    ann = {hashlib.sha256(line).hexdigest() for line in lines if b'"cust-ann"' in line}

    cleaned, removed = lineage.without_records(store, stored.model_dump(), ann, "the test dataset")
    assert removed == 12 and b"cust-ann" not in store.resolve(cleaned.uri).read_bytes()

    method = MethodSpec(kind="sft")
    params = validate_hyperparameters(
        {"max_seq_length": 80, "max_steps": 6, "learning_rate": 5e-3, "save_steps": 1000, "logging_steps": 2}, method
    )
    job = TrainingJob(job_id="retrain", base=tiny_base, method=method, params=params, seed=7,
                      dataset=load_dataset(store.resolve(cleaned.uri)), workdir=tmp_path / "retrain")
    started = time.perf_counter()
    outcome = run_training(job, NullHooks())
    seconds = time.perf_counter() - started
    print(f"\nerasure retraining: LoRA on tiny, {len(records) - removed} records, 6 steps in {seconds:.1f} s")
    assert (outcome.model_dir / "adapter_model.safetensors").exists()
    assert outcome.metrics["final_loss"] < outcome.metrics["first_loss"]
