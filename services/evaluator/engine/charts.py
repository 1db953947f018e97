"""The evaluation report's charts as PNG bytes: base vs fine-tuned for each suite's metrics, and one histogram
per distribution a suite handed back (canary exposures, say).

Deterministic by construction, since the report's JSON commits to each chart's sha256: matplotlib's own
defaults (not the host's matplotlibrc), the Agg canvas without touching the global backend, a fixed dpi,
and no Software/date metadata in the PNG. Labels come from suites (metric and histogram names) and are drawn
with mathtext off, so a `$` in a name is text, never parsed."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

DPI = 100
MAX_PANELS = 24
"""Metrics drawn per suite chart; the tables list all of them."""
COLUMNS = 4
TUNED_COLOUR = "#2f6db5"
BASE_COLOUR = "#9a9a9a"
FAIL_COLOUR = "#c0392b"


@contextmanager
def _figure(width: float, height: float) -> Iterator[Any]:
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # the host's matplotlibrc must not change the bytes; undone on exit
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(figure)
        yield figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def metrics_chart(suite: str, tuned: Mapping[str, float | None], base: Mapping[str, float | None],
                  failing: set[str]) -> bytes:
    """Small multiples: one panel per metric, base and fine-tuned bars side by side. Each panel has its own
    y-scale because one suite mixes rates (0..1) with bits or counts; a shared axis would flatten the rates.
    Panels of metrics the gate failed get a red title."""
    names = list(dict.fromkeys([*tuned, *base]))
    shown = names[:MAX_PANELS]
    columns = min(COLUMNS, len(shown))
    rows = math.ceil(len(shown) / columns)
    with _figure(2.4 * columns + 0.4, 2.1 * rows + 0.7) as figure:
        title = f"{suite}: base vs fine-tuned"
        if len(names) > len(shown):
            title += f" (first {len(shown)} of {len(names)} metrics)"
        figure.suptitle(title, fontsize=10, parse_math=False)
        for index, name in enumerate(shown):
            axes = figure.add_subplot(rows, columns, index + 1)
            values = (base.get(name), tuned.get(name))
            for x, (value, colour) in enumerate(zip(values, (BASE_COLOUR, TUNED_COLOUR), strict=True)):
                if _finite(value):
                    axes.bar(x, value, width=0.7, color=colour)
                    axes.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom" if value >= 0 else "top",
                                  fontsize=7, annotation_clip=False, parse_math=False)
                else:
                    axes.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#555555")
            finite = [v for v in values if _finite(v)]
            low, high = min([0.0, *finite]), max([0.0, *finite])
            span = (high - low) or 1.0
            axes.set_ylim(low - 0.05 * span * (low < 0), high + 0.2 * span)
            axes.set_xlim(-0.7, 1.7)
            axes.set_xticks([0, 1])
            axes.set_xticklabels(["base", "tuned"], fontsize=7)
            axes.tick_params(axis="y", labelsize=7)
            axes.set_title(name, fontsize=8, color=FAIL_COLOUR if name in failing else "black", parse_math=False)
            axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        return _png(figure)


def histogram_chart(suite: str, key: str, values: Sequence[float]) -> bytes:
    """One distribution; non-finite values are counted in the title, not drawn."""
    finite = [float(v) for v in values if _finite(v)]
    with _figure(6.0, 3.2) as figure:
        axes = figure.add_subplot(1, 1, 1)
        bins = min(30, max(5, math.ceil(math.sqrt(len(finite)))))
        axes.hist(finite, bins=bins, color=TUNED_COLOUR, edgecolor="white")
        title = f"{suite}: {key} (n={len(finite)})"
        if len(finite) < len(values):
            title += f", {len(values) - len(finite)} not finite"
        axes.set_title(title, fontsize=10, parse_math=False)
        axes.set_xlabel(key, parse_math=False)
        axes.set_ylabel("count")
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        return _png(figure)
