"""What a caller asks the local engine for and what it gets back, and the engine's errors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    adapter: str | None  # a model version id loaded on this engine's base; None = the base alone
    prompt: str  # already rendered (see LocalEngine.render_chat)
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    watermark: bool = False


@dataclass
class GenerationChunk:
    text: str  # new text since the previous chunk
    finish_reason: str | None = None  # "stop" | "length", on the last chunk only
    prompt_tokens: int = 0  # on the last chunk
    completion_tokens: int = 0  # on the last chunk
    model_seconds: float = 0.0  # on the last chunk: wall time of the forward passes this request took part in


class EngineError(RuntimeError):
    """The engine could not serve a request (the message says why)."""


class AdapterNotLoaded(EngineError, LookupError):
    """The request names an adapter this engine does not serve (never loaded, or unloaded)."""


class EngineClosed(EngineError):
    """The engine was closed before or while serving the request."""
