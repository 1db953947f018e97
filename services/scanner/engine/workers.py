"""How many worker processes a scan may start. Kept apart from records.py, which imports Presidio, so that
the CLI can check `--workers` without paying for those imports."""

from __future__ import annotations

import os

# More worker processes than this is refused outright (`tunegate scan --workers`): each one holds its own
# recognizers and NER (about 330 MB), and an unbounded request once forked 1,000+ of them and took a machine
# down. The number actually started is lower still (`plan_workers`).
MAX_WORKERS = 256


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(requested: int, *, cpus: int, chunks: int) -> int:
    """Worker processes to start: what was asked for, but never more than the CPUs (more only contend for
    them, at ~330 MB each), nor than the chunks there are to hand out (an idle worker is pure cost), nor
    than MAX_WORKERS (the CLI refuses more; a service's configuration is capped here)."""
    return max(1, min(requested, cpus, chunks, MAX_WORKERS))
