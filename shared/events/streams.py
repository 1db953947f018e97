"""Stream names: one Redis stream per domain, and its dead-letter twin."""

from __future__ import annotations

from enum import StrEnum


class Stream(StrEnum):
    JOBS = "tunegate.jobs"
    DATASETS = "tunegate.datasets"
    TRAINING = "tunegate.training"
    EVALUATION = "tunegate.evaluation"
    MODELS = "tunegate.models"
    INFERENCE = "tunegate.inference"
    BUS = "tunegate.bus"


ALL_STREAMS: tuple[Stream, ...] = tuple(Stream)


def dlq_name(stream: str) -> str:
    return f"{stream}.dlq"
