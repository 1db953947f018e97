"""What a completed run states about itself: library versions, code commit, the loss curve as a PNG."""

from __future__ import annotations

import io
import os
import subprocess
from importlib import metadata
from pathlib import Path

TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "opacus", "tokenizers",
                      "safetensors")
REPO_ROOT = Path(__file__).resolve().parents[3]


def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRAINING_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_commit() -> str | None:
    """TUNEGATE_CODE_COMMIT when the deployment sets it (images carry no .git), else the checkout's HEAD."""
    if commit := os.environ.get("TUNEGATE_CODE_COMMIT"):
        return commit
    try:
        result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def loss_curve_png(history: list[tuple[int, float]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    if history:
        steps, losses = zip(*history, strict=True)
        axes.plot(steps, losses, marker="o", markersize=2)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    # No software/date metadata, so the same curve gives the same bytes (and the same digest).
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
