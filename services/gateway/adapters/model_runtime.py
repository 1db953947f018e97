"""Locally served versions: adapters loaded onto their base in the engine pool when deployed, unloaded when
retired or displaced, and loaded on first use after a restart. Loading runs in a worker thread (unpacking an
artefact and reading weights take seconds on real models), one load per version at a time."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.gateway.domain.routes import LocalRoute
from services.gateway.domain.state import Change
from shared.events.payloads import ArtifactRef
from shared.ids import validate_version_id
from shared.models.bases import BaseModelInfo
from shared.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from services.gateway.adapters.engine import LocalEngine
    from services.gateway.adapters.engine_pool import EnginePool

log = logging.getLogger("tunegate.gateway.models")


class ModelUnavailable(RuntimeError):
    """A deployed version that cannot be served right now (its artefact or base is unusable)."""


class ModelRuntime:
    def __init__(
        self,
        *,
        artifacts: ArtifactStore,
        resolve_base: Callable[[str], BaseModelInfo],
        make_pool: Callable[[], EnginePool],
    ) -> None:
        self.artifacts = artifacts
        self.resolve_base = resolve_base
        self._make_pool = make_pool
        self._pool: EnginePool | None = None
        self._pool_lock = threading.Lock()
        self._locks: dict[str, asyncio.Lock] = {}
        self._loaded: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def pool(self) -> EnginePool:
        # Built on the first local route, not at start (it imports torch); loads run in worker threads, so two
        # first loads at once must not build two pools.
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._make_pool()
            return self._pool

    def _load_sync(self, route: LocalRoute) -> None:
        validate_version_id(route.version_id)
        base = self.resolve_base(route.base_model)
        tar = self.artifacts.verify(ArtifactRef(uri=route.artifact_uri, sha256=route.artifact_sha256))
        self.pool.load(route.version_id, Path(base.path), route.adapter, tar)  # unpacks under its own folder

    async def ensure_loaded(self, route: LocalRoute) -> tuple[LocalEngine, str | None]:
        if route.version_id not in self._loaded:
            lock = self._locks.setdefault(route.version_id, asyncio.Lock())
            async with lock:
                if route.version_id not in self._loaded:
                    try:
                        await asyncio.to_thread(self._load_sync, route)
                    except Exception as exc:
                        log.exception("loading %s failed", route.version_id)
                        raise ModelUnavailable(
                            f"model version {route.version_id} cannot be served: {type(exc).__name__}: {exc}"
                        ) from None
                    self._loaded.add(route.version_id)
        return self.pool.engine_for(route.version_id)

    async def unload(self, route: LocalRoute) -> None:
        lock = self._locks.setdefault(route.version_id, asyncio.Lock())
        async with lock:
            if route.version_id in self._loaded:
                self._loaded.discard(route.version_id)
                await self.pool.unload(route.version_id)

    def on_change(self, change: Change) -> None:
        """Handlers call this: deployed versions are preloaded, displaced and retired ones unloaded."""
        for route in change.unload:
            self._spawn(self.unload(route))
        for route in change.load:
            self._spawn(self._preload(route))

    def on_change_load(self, route: LocalRoute) -> None:
        self._spawn(self._preload(route))

    async def _preload(self, route: LocalRoute) -> None:
        try:
            await self.ensure_loaded(route)
        except ModelUnavailable as exc:
            log.error("%s", exc)  # the first request answers 503 with the same reason

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._pool is not None:
            await self._pool.aclose()
