"""Registry: system of record for fine-tuning jobs (intake, advice, approval gate, job state machine)."""
