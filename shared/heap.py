"""Keeping the garbage collector off a long-running service's request path.

A service imports torch, transformers, Presidio and its own registries before it serves: half a million
objects that live as long as the process. CPython's full (generation 2) collection walks every one of them
each time it runs, which took 150-450 ms in the gateway on 2 cores, with the event loop stopped: every
request in flight waited that long (the gateway's p99). `gc.freeze()` moves everything alive at that
moment into a permanent generation the collector no longer scans; what requests allocate afterwards is
collected as before."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up has loaded what the process keeps (idempotent: later calls add what was loaded
    since). Start-up's own garbage is collected first so that it is not kept for good."""
    gc.collect()
    gc.freeze()
