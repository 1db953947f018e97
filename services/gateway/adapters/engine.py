"""The gateway's local serving engine: one loaded base model serving many LoRA adapters at once.

Scheduling is continuous batching: one worker thread owns the model and runs a decode loop over a running
batch with one KV cache (left-padded, with an attention mask and per-row positions). Between two decode
steps, requests that arrived join the batch (their prompts are prefilled together and their cache merged
in) and finished or abandoned rows leave it, so a short request never waits for a long one. Rows with
different adapters share every forward pass through PEFT's mixed-adapter inference (`adapter_names`, one
name per row, "__base__" for the base alone); each LoRA delta is applied only to its own rows.

Threading: the model is touched only by the worker thread (torch releases the GIL in its kernels), so
adapter loads and deletes are queued to it too. Asyncio callers receive chunks through
`loop.call_soon_threadsafe`. State lives on the instance; nothing is global.

Unloading: `unload_adapter` refuses new requests for the adapter at once; requests already accepted for it
(running or queued) finish normally, and the weights are freed when the last of them ends."""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.gateway.adapters.decoding import BASE_ADAPTER, Batch, Row, TextTail, watermark_config
from services.gateway.adapters.generation import (
    AdapterNotLoaded,
    EngineClosed,
    EngineError,
    GenerationChunk,
    GenerationRequest,
)

__all__ = ["AdapterNotLoaded", "EngineClosed", "EngineError", "GenerationChunk", "GenerationRequest",
           "LocalEngine", "watermark_config"]


@dataclass
class _Adapter:
    directory: Path
    key: str  # the PEFT adapter name (version ids hold '.', which torch module names cannot)
    loaded: Future[None] = field(default_factory=Future)
    draining: bool = False
    running: int = 0  # accepted requests not yet finished


@dataclass
class _Load:
    name: str


@dataclass
class _Drop:
    name: str


@dataclass
class _Close:
    drain: bool


class LocalEngine:
    """One base model (a Hugging Face checkpoint directory) and the LoRA adapters loaded on it."""

    def __init__(self, base_path: Path, *, max_batch: int = 16, batch_wait_ms: float = 2.0,
                 watermark_key: int = 15485863) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.base_path = Path(base_path)
        self.max_batch = max_batch
        self.batch_wait_s = max(0.0, batch_wait_ms) / 1000.0
        self.watermark_key = watermark_key
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_path)
        self._model: Any = AutoModelForCausalLM.from_pretrained(self.base_path, dtype=torch.float32).eval()
        self.model_config = self._model.config  # what a WatermarkDetector needs
        self.largest_batch = 0  # the most rows decoded together so far (observability; the worker raises it)
        self._device = next(self._model.parameters()).device
        self.context_length = int(getattr(self._model.config, "max_position_embeddings", 0) or 1 << 30)
        eos = self._model.generation_config.eos_token_id
        self._eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            self._eos_ids.add(self.tokenizer.eos_token_id)
        vocab = self._model.config.get_text_config().vocab_size
        self._batch = Batch(self._model, self._eos_ids,
                            watermark_config(watermark_key).construct_processor(vocab, self._device), self._device)
        self._peft = False  # the model becomes a PeftModel with the first adapter
        self._adapters: dict[str, _Adapter] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()  # guards _adapters and _closed between callers and the worker
        self._closed = False
        self._draining_to_close = False  # worker-only: close once the batch and the queue are empty
        self._inbox: queue.Queue[Row | _Load | _Drop | _Close] = queue.Queue()
        self._waiting: deque[Row] = deque()
        self._admitting: list[Row] = []  # worker-only: rows being prefilled, not yet in the batch
        self._worker = threading.Thread(target=self._run, name=f"engine:{self.base_path.name}", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------------------------------ adapters

    def load_adapter(self, name: str, adapter_dir: Path) -> None:
        """Load a PEFT LoRA directory under `name` while the engine serves. Idempotent: a name already loaded
        (version ids name immutable artefacts) is kept, and a draining one is kept serving. Blocks until the
        worker has loaded it; from async code call it through `asyncio.to_thread`."""
        adapter_dir = Path(adapter_dir)
        if name == BASE_ADAPTER:
            raise ValueError(f"{BASE_ADAPTER!r} is reserved for the base model")
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ValueError(f"{adapter_dir} is not a LoRA adapter directory: it has no adapter_config.json")
        with self._lock:
            if self._closed:
                raise EngineClosed("the engine is closed")
            adapter = self._adapters.get(name)
            if adapter is None:
                adapter = _Adapter(adapter_dir, key=f"adapter_{next(self._keys)}")
                self._adapters[name] = adapter
                self._inbox.put(_Load(name))
            adapter.draining = False
            loaded = adapter.loaded
        loaded.result()

    def unload_adapter(self, name: str) -> None:
        """Stop accepting requests for `name`; those already accepted finish, then its weights are freed.
        Unknown names are ignored (retire events may repeat)."""
        with self._lock:
            adapter = self._adapters.get(name)
            if adapter is None or adapter.draining:
                return
            adapter.draining = True
            if adapter.running == 0:
                self._inbox.put(_Drop(name))

    def adapters(self) -> list[str]:
        """Adapters that accept requests now."""
        with self._lock:
            return sorted(n for n, a in self._adapters.items()
                          if not a.draining and a.loaded.done() and a.loaded.exception() is None)

    # ------------------------------------------------------------------------------------------ text

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt for `messages`: the tokenizer's chat template, else "role: content" lines."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # ------------------------------------------------------------------------------------------ serving

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Chunks of new text as they are decoded; the last one has finish_reason and the counts. Closing the
        iterator early (a client that went away) drops the row from the batch at the next step."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[GenerationChunk | BaseException] = asyncio.Queue()

        def emit(item: GenerationChunk | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, item)
            except RuntimeError:  # the caller's event loop is closed: nobody is listening any more
                row.cancelled = True

        row = self._submit(request, emit)
        finished = False
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
                if item.finish_reason is not None:
                    finished = True
                    return
        finally:
            if not finished:
                row.cancelled = True

    async def complete(self, request: GenerationRequest) -> GenerationChunk:
        """The whole completion as one chunk."""
        parts: list[str] = []
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                return GenerationChunk("".join(parts), chunk.finish_reason, chunk.prompt_tokens,
                                       chunk.completion_tokens, chunk.model_seconds)
        raise EngineError("the engine ended the request without a final chunk")

    async def aclose(self, *, drain: bool = False) -> None:
        """Stop the worker thread. New requests are refused at once; with `drain`, queued and running ones
        finish first, else they fail with EngineClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._inbox.put(_Close(drain))
        await asyncio.to_thread(self._worker.join)

    def _submit(self, request: GenerationRequest, emit: Any) -> Row:
        import torch

        if request.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {request.max_new_tokens}")
        if request.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {request.temperature}")
        if not 0 < request.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {request.top_p}")
        if any(not stop for stop in request.stop):
            raise ValueError("stop strings must not be empty")
        prompt_ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        if len(prompt_ids) + request.max_new_tokens > self.context_length:
            raise ValueError(f"the prompt's {len(prompt_ids)} tokens plus max_new_tokens {request.max_new_tokens} "
                             f"exceed the model's context of {self.context_length} tokens")
        generator = None
        if request.temperature > 0:
            generator = torch.Generator(device=self._device)
            seed = request.seed if request.seed is not None else int.from_bytes(os.urandom(8), "big") >> 1
            generator.manual_seed(seed)
        with self._lock:
            if self._closed:
                raise EngineClosed("the engine is closed")
            key = BASE_ADAPTER
            if request.adapter is not None:
                adapter = self._adapters.get(request.adapter)
                if adapter is None or adapter.draining or not adapter.loaded.done():
                    raise AdapterNotLoaded(f"adapter {request.adapter!r} is not loaded on base {self.base_path.name}")
                adapter.running += 1
                key = adapter.key
            row = Row(adapter_key=key, adapter_name=request.adapter, prompt_ids=prompt_ids,
                      max_new_tokens=request.max_new_tokens, temperature=request.temperature, top_p=request.top_p,
                      watermark=request.watermark, generator=generator,
                      tail=TextTail(self.tokenizer, tuple(request.stop)), emit=emit)
            self._inbox.put(row)
        return row

    # ------------------------------------------------------------------------------------------ worker

    def _run(self) -> None:
        running = True
        while running:
            try:
                running = self._tick()
            except Exception as error:  # a failed step must not take the engine down with it
                failure = EngineError(f"generation failed: {type(error).__name__}: {error}")
                failed = self._batch.fail_all(failure)
                for row in self._admitting:  # a failed prefill: they never reached the batch
                    if row not in failed:
                        row.emit(failure)
                        failed.append(row)
                self._admitting = []
                self._release(failed)

    def _tick(self) -> bool:
        """One round of the worker: take messages (waiting when idle), then admit and decode. False: closed."""
        if not self._batch.rows and not self._waiting:
            if self._draining_to_close:
                return False
            if not self._handle(self._inbox.get()):
                return False
            if self._waiting and self.batch_wait_s > 0 and not self._gather():
                return False
        if not self._drain():
            return False
        self._advance()
        return True

    def _gather(self) -> bool:
        """From idle: wait up to batch_wait for more requests, so a burst starts as one batch."""
        deadline = time.monotonic() + self.batch_wait_s
        while len(self._waiting) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message = self._inbox.get(timeout=left)
            except queue.Empty:
                break
            if not self._handle(message):
                return False
        return True

    def _drain(self) -> bool:
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return True
            if not self._handle(message):
                return False

    def _handle(self, message: Row | _Load | _Drop | _Close) -> bool:
        """Apply one message; False when the engine is closing."""
        if isinstance(message, Row):
            self._waiting.append(message)
        elif isinstance(message, _Load):
            self._load(message.name)
        elif isinstance(message, _Drop):
            self._drop(message.name)
        elif message.drain:
            self._draining_to_close = True
        else:
            error = EngineClosed("the engine was closed")
            self._release(self._batch.fail_all(error))
            while self._waiting:
                row = self._waiting.popleft()
                row.emit(error)
                self._release([row])
            self._drain_after_close(error)
            return False
        return True

    def _drain_after_close(self, error: EngineClosed) -> None:
        while not self._inbox.empty():  # this thread is the only consumer, so empty() is reliable here
            message = self._inbox.get_nowait()
            if isinstance(message, Row):
                message.emit(error)

    def _advance(self) -> None:
        mixed = self._peft
        free = self.max_batch - len(self._batch.rows)
        newcomers = []
        while self._waiting and len(newcomers) < free:
            row = self._waiting.popleft()
            if row.cancelled:
                self._release([row])
            else:
                newcomers.append(row)
        if newcomers:  # joined rows take part in this very step, so a stream of arrivals starves no one
            self._admitting = newcomers
            self._batch.admit(newcomers, mixed)
            self._admitting = []
            self.largest_batch = max(self.largest_batch, len(self._batch.rows))
            self._release(self._batch.retire())
        if self._batch.rows:
            self._batch.step(mixed)
            self._release(self._batch.retire())

    def _release(self, rows: list[Row]) -> None:
        drops = []
        with self._lock:
            for row in rows:
                adapter = self._adapters.get(row.adapter_name) if row.adapter_name is not None else None
                if adapter is None:
                    continue
                adapter.running -= 1
                if adapter.draining and adapter.running == 0:
                    drops.append(row.adapter_name)
        for name in drops:
            self._drop(name)

    def _load(self, name: str) -> None:
        with self._lock:
            adapter = self._adapters[name]
        try:
            if self._peft:
                self._model.load_adapter(str(adapter.directory), adapter_name=adapter.key)
            else:
                from peft import PeftModel

                self._model = PeftModel.from_pretrained(self._model, str(adapter.directory),
                                                        adapter_name=adapter.key).eval()
                self._batch.model = self._model
                self._peft = True
        except Exception as error:
            with self._lock:
                self._adapters.pop(name, None)
            adapter.loaded.set_exception(
                EngineError(f"could not load adapter {name!r} from {adapter.directory}: {error}"))
            return
        adapter.loaded.set_result(None)

    def _drop(self, name: str) -> None:
        with self._lock:
            adapter = self._adapters.get(name)
            if adapter is None or not adapter.draining or adapter.running:
                return  # reloaded meanwhile, or a request still holds it
            del self._adapters[name]
            last = not any(a.loaded.done() for a in self._adapters.values())
        if last:
            # PEFT cannot run a PeftModel whose last adapter was deleted (it looks the active one up): take the
            # LoRA layers out instead, which gives back the untouched base.
            self._model = self._model.unload()
            self._batch.model = self._model
            self._peft = False
        else:
            self._model.delete_adapter(adapter.key)
