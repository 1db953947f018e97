"""The KL bound an RLHF job trains under (method.rlhf.kl_bound, on_kl_exceeded). Pure."""

from __future__ import annotations

from dataclasses import dataclass


class KlBoundExceeded(RuntimeError):
    """The policy drifted further from its starting point than the job allows (on_kl_exceeded: fail)."""


@dataclass
class KlGuard:
    """Tracks the KL the trainer logs and says when the job's bound is crossed."""

    bound: float
    on_exceeded: str  # "fail" | "stop"
    highest: float = 0.0
    exceeded_at: int | None = None

    def observe(self, step: int, kl: float) -> bool:
        """Record the KL logged at `step`; True when training must stop (the bound was crossed)."""
        self.highest = max(self.highest, kl)
        if kl <= self.bound:
            return False
        self.exceeded_at = step
        if self.on_exceeded == "fail":
            raise KlBoundExceeded(f"KL to the starting policy reached {kl:.4f} at step {step}, above the job's "
                                  f"kl_bound {self.bound} (method.rlhf.on_kl_exceeded: fail)")
        return True
