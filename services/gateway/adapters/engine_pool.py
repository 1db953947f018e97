"""Which engine serves which deployed version: LoRA versions share the engine of their base (one copy of the
base weights, batched across adapters); a full fine-tune is a whole model, so it gets an engine of its own."""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.evaluator.engine.models import extract_artifact
from services.gateway.adapters.engine import LocalEngine
from services.gateway.adapters.generation import AdapterNotLoaded
from shared.ids import validate_version_id

AdapterKind = Literal["lora", "full"]


@dataclass(frozen=True)
class _Served:
    engine_key: str
    adapter: str | None  # the adapter's name on a shared base engine; None for a full model's own engine
    unpacked: Path | None  # the folder we extracted its tar into (removed on unload)


class EnginePool:
    """Engines by base, versions by id. `load` and `unload` block while models load; call them from async code
    through `asyncio.to_thread`. `unpack_dir` is where artefact tars are extracted, one folder per version."""

    def __init__(self, unpack_dir: Path, *, max_batch: int = 16, batch_wait_ms: float = 2.0,
                 watermark_key: int = 15485863) -> None:
        self.unpack_dir = Path(unpack_dir)
        self.max_batch, self.batch_wait_ms, self.watermark_key = max_batch, batch_wait_ms, watermark_key
        self._engines: dict[str, LocalEngine] = {}
        self._versions: dict[str, _Served] = {}
        self._lock = threading.Lock()  # serialises loads and unloads (they may come from several threads)

    def load(self, version_id: str, base_path: Path, adapter_kind: AdapterKind, artefact: Path) -> None:
        """Serve `version_id`: `artefact` is the trainer's tar or an already unpacked folder. Loading a version
        already served does nothing."""
        validate_version_id(version_id)  # before it names a folder
        if adapter_kind not in ("lora", "full"):
            raise ValueError(f"adapter kind must be 'lora' or 'full', got {adapter_kind!r}")
        artefact = Path(artefact)
        if not artefact.exists():
            raise FileNotFoundError(f"artefact of {version_id} not found: {artefact}")
        with self._lock:
            if version_id in self._versions:
                return
            unpacked = None
            folder = artefact
            if artefact.is_file():
                unpacked = self.unpack_dir / version_id
                shutil.rmtree(unpacked, ignore_errors=True)  # a leftover of an earlier run is not trusted
                folder = extract_artifact(artefact, unpacked)
            try:
                if adapter_kind == "full":
                    if not (folder / "config.json").is_file():
                        raise ValueError(f"the artefact of {version_id} is not a full model: it has no config.json")
                    key = f"full:{version_id}"
                    self._engines[key] = self._new_engine(folder)
                    self._versions[version_id] = _Served(key, None, unpacked)
                    return
                key = f"base:{Path(base_path).resolve()}"
                engine = self._engines.get(key)
                if engine is None:
                    engine = self._new_engine(Path(base_path))
                    self._engines[key] = engine
                engine.load_adapter(version_id, folder)
                self._versions[version_id] = _Served(key, version_id, unpacked)
            except BaseException:
                if unpacked is not None:
                    shutil.rmtree(unpacked, ignore_errors=True)
                raise

    def _new_engine(self, model_dir: Path) -> LocalEngine:
        return LocalEngine(model_dir, max_batch=self.max_batch, batch_wait_ms=self.batch_wait_ms,
                           watermark_key=self.watermark_key)

    async def unload(self, version_id: str) -> None:
        """Stop serving `version_id`: new requests are refused at once, requests already accepted finish.
        A full model's engine closes once they have; a base engine stays for the other adapters."""
        with self._lock:
            served = self._versions.pop(version_id, None)
            if served is None:
                return
            engine = self._engines[served.engine_key]
            if served.adapter is None:
                del self._engines[served.engine_key]
            else:
                engine.unload_adapter(served.adapter)
        if served.adapter is None:
            await engine.aclose(drain=True)
        if served.unpacked is not None:  # the weights are in memory (or the engine is gone)
            shutil.rmtree(served.unpacked, ignore_errors=True)

    def engine_for(self, version_id: str) -> tuple[LocalEngine, str | None]:
        """The engine serving `version_id` and the adapter name to put in its GenerationRequest. Lock-free (a
        dict read is atomic), so requests are never held up behind a model that is loading."""
        served = self._versions.get(version_id)
        engine = self._engines.get(served.engine_key) if served is not None else None
        if served is None or engine is None:
            raise AdapterNotLoaded(f"model version {version_id!r} is not served here")
        return engine, served.adapter

    def versions(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)

    async def aclose(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._versions.clear()
        for engine in engines:
            await engine.aclose()
