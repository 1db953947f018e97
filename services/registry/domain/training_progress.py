"""A job's training progress as the registry keeps it from `training.progress` events: the loss curve, the
step reached, and an ETA from the step rate. Pure: the points come from adapters/training_progress.py, the
console draws the chart from `chart()` (server-rendered SVG, and the same geometry in its JSON for the page's
poller, so the drawing is computed in one place).

Progress is telemetry, not a state of the job: it changes no aggregate and records no event."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

RATE_WINDOW = 20
"""The ETA uses the step rate over the last this many points of the current run: recent enough to follow a
slowdown, long enough to smooth one slow logging interval."""


@dataclass(frozen=True)
class ProgressPoint:
    step: int
    total_steps: int
    loss: float | None
    at: datetime
    """When the trainer logged it (the event's occurred_at: one clock for the whole run)."""
    eta_s: float | None = None
    """The trainer's own estimate at that point (used while there is only one point)."""
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class Chart:
    """The loss curve in an SVG viewBox of `width` x `height`: the polyline's points and the axis labels."""

    width: int
    height: int
    polyline: str
    loss_min: float | None
    loss_max: float | None
    step_max: int


@dataclass(frozen=True)
class Progress:
    points: list[ProgressPoint]
    step: int
    total_steps: int
    loss: float | None
    steps_per_s: float | None
    eta_s: float | None
    at: datetime | None

    @property
    def percent(self) -> int:
        return 0 if self.total_steps <= 0 else min(100, math.floor(100 * self.step / self.total_steps))


def current_run(points: list[ProgressPoint]) -> list[ProgressPoint]:
    """The points since the last resume: a step lower than the one before means the run restarted from a
    checkpoint, and time spent before that restart says nothing about the current rate."""
    start = 0
    for i in range(1, len(points)):
        if points[i].step <= points[i - 1].step:
            start = i
    return points[start:]


def summarise(points: list[ProgressPoint]) -> Progress:
    """Where the run is and when it should end: remaining steps over the recent step rate."""
    if not points:
        return Progress(points=[], step=0, total_steps=0, loss=None, steps_per_s=None, eta_s=None, at=None)
    last = points[-1]
    window = current_run(points)[-RATE_WINDOW:]
    rate = None
    if len(window) >= 2:
        seconds = (window[-1].at - window[0].at).total_seconds()
        steps = window[-1].step - window[0].step
        if seconds > 0 and steps > 0:
            rate = steps / seconds
    remaining = max(0, last.total_steps - last.step)
    eta = remaining / rate if rate else last.eta_s
    return Progress(
        points=points, step=last.step, total_steps=last.total_steps, loss=last.loss, steps_per_s=rate, eta_s=eta,
        at=last.at,
    )


def chart(points: list[ProgressPoint], width: int = 640, height: int = 240, pad: int = 8) -> Chart:
    """Loss against step, scaled to fill the box less `pad` on each side (lower loss drawn lower)."""
    drawn = [p for p in points if p.loss is not None and math.isfinite(p.loss)]
    step_max = max((p.total_steps for p in points), default=0) or max((p.step for p in points), default=0)
    if not drawn:
        return Chart(width, height, "", None, None, step_max)
    losses = [p.loss for p in drawn if p.loss is not None]
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    x_span = max(step_max, 1)
    coords = []
    for p in drawn:
        assert p.loss is not None
        x = pad + (width - 2 * pad) * p.step / x_span
        y = pad + (height - 2 * pad) * (high - p.loss) / span
        coords.append(f"{x:.1f},{y:.1f}")
    return Chart(width, height, " ".join(coords), low, high, step_max)


def duration(seconds: float | None) -> str:
    """An ETA for people: 1 h 05 min, 3 min 20 s, 12 s."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
