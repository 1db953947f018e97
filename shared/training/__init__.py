"""The training contract: one hyperparameter schema and one check, applied by the registry to a job spec at
intake (so a job that could never train is refused before it is approved) and by `training.requested`, which
carries the hyperparameters typed."""

from shared.training.hyperparameters import (
    HyperparameterError,
    HyperParameters,
    check_data_fits,
    split_seed,
    validate_hyperparameters,
)

__all__ = ["HyperParameters", "HyperparameterError", "check_data_fits", "split_seed", "validate_hyperparameters"]
