"""Progress arithmetic (throughput, ETA) and the checkpoint manifest, free of any training library."""

from __future__ import annotations

from dataclasses import dataclass

from shared.canonical import canonical_json


class TrainingCancelledError(RuntimeError):
    """Raised inside training when a cancel request was seen; carries the step it stopped at."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step
        super().__init__(f"cancelled at step {at_step}")


class TrainingRejected(RuntimeError):
    """The run cannot ship what it trained; the message is the training.failed reason, as it stands."""


class TrainingDiverged(TrainingRejected):
    """A logged loss, or a trained weight, is NaN or infinite."""


class PrivacyGuaranteeVoid(TrainingRejected):
    """A DP run whose noise buys no meaningful privacy: the epsilon spent is infinite or past what intake accepts."""


@dataclass
class ThroughputMeter:
    """Tokens/s and ETA from (time, step, tokens) samples; only steps trained in this process count, so a
    resumed job does not report the steps it skipped as instant."""

    total_steps: int
    start_time: float
    start_step: int = 0
    start_tokens: int = 0

    def sample(self, now: float, step: int, tokens: int) -> tuple[float | None, float | None]:
        """Return (tokens_per_s, eta_s) given the cumulative step and token count at `now`."""
        elapsed = now - self.start_time
        done = step - self.start_step
        if elapsed <= 0 or done <= 0:
            return None, None
        tokens_per_s = (tokens - self.start_tokens) / elapsed if tokens > self.start_tokens else None
        eta = elapsed / done * max(0, self.total_steps - step)
        return tokens_per_s, eta


def checkpoint_manifest(job_id: str, step: int, files: dict[str, str]) -> bytes:
    """Canonical bytes naming every checkpoint file by digest; its sha256 content-addresses the checkpoint."""
    return canonical_json({"job_id": job_id, "step": step, "files": dict(sorted(files.items()))})
