import asyncio
import contextlib

from services.gateway.bootstrap import build
from shared.bus.lifecycle import run_service

if __name__ == "__main__":
    # The gateway is on every request's path: uvloop's event loop (where installed) cuts its added latency.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_service(build)
