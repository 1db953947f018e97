"""The training contract shared by the registry (validates a job's hyperparameters at intake) and the
trainer (validates again before loading a model): one schema, so a job is refused before it is approved."""

from shared.training.hyperparameters import (
    HyperparameterError,
    HyperParameters,
    check_data_fits,
    split_seed,
    validate_hyperparameters,
)

__all__ = ["HyperParameters", "HyperparameterError", "check_data_fits", "split_seed", "validate_hyperparameters"]
