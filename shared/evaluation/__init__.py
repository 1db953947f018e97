"""What the registry, scanner, trainer and evaluator share about evaluating a job: the job's evaluation
options, canary shapes and their derivation, and the held-out split record. Pure: no model code here."""
