"""What the engine's worker thread does to a batch: prefill newcomers, merge their KV cache into the running
batch, one decode step for every row, token choice per row, and the text each row may emit.

Everything here runs on the engine's one worker thread; nothing is shared with the event loop except the
`emit` callback a row carries (which hops to the loop with call_soon_threadsafe) and the `cancelled` flag
the loop may set (a plain bool write, read once per step)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, WatermarkingConfig

from services.gateway.adapters.generation import GenerationChunk

BASE_ADAPTER = "__base__"
GREEDY_BELOW_TEMPERATURE = 1e-5
"""Temperatures below this decode greedily, as 0 does: dividing float32 logits by 1e-300 made infinities, the
softmax NaN, and multinomial's error failed every request in the batch. (At 1e-5 sampling is already greedy
in all but exact ties.)"""
"""PEFT's name for "no adapter" in a mixed batch's `adapter_names`."""


def watermark_config(key: int) -> WatermarkingConfig:
    """The watermark every watermarked row gets (Kirchenbauer et al. 2023, left-hash on the previous token,
    a quarter of the vocabulary green, +2 logits): a detector rebuilds it from the same key with
    `WatermarkDetector(model_config, device, watermark_config(key))`."""
    return WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=key, seeding_scheme="lefthash",
                              context_width=1)


@dataclass
class TextTail:
    """Turns a row's token ids into text deltas: multi-byte characters split over tokens are held until
    complete (the decoder yields U+FFFD meanwhile), and text that could be the start of a stop string is
    held until it is known not to be one."""

    tokenizer: Any
    stops: tuple[str, ...]
    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    _prefix_offset: int = 0
    _read_offset: int = 0

    def push(self, token_id: int) -> None:
        """Incremental decoding as in text-generation-inference: decode a short window twice and keep the
        difference, so merged tokens and leading spaces come out as a full decode would give them."""
        self.ids.append(token_id)
        window = self.ids[self._prefix_offset:]
        before = self.tokenizer.decode(self.ids[self._prefix_offset:self._read_offset], skip_special_tokens=True)
        after = self.tokenizer.decode(window, skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.ids)

    def stop_at(self) -> int | None:
        """Where the first stop string begins in the text not yet emitted (None: no stop string yet)."""
        found = [i for i in (self.text.find(stop, self.emitted) for stop in self.stops) if i >= 0]
        return min(found) if found else None

    def take(self, *, final: bool, end: int | None = None) -> str:
        """The text that may go out now: up to `end` when given (a stop string), everything when `final`,
        else all but the longest tail that could still grow into a stop string."""
        if end is None:
            end = len(self.text)
            if not final:
                end -= self._held_back()
        delta = self.text[self.emitted:end]
        self.emitted = max(self.emitted, end)
        return delta

    def _held_back(self) -> int:
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text) - self.emitted), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest


@dataclass(eq=False)
class Row:
    """One request in the running batch."""

    adapter_key: str  # PEFT adapter name, or BASE_ADAPTER
    adapter_name: str | None  # the caller's name, to release the engine's reference when the row ends
    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    watermark: bool
    generator: torch.Generator | None
    tail: TextTail
    emit: Callable[[Any], None]
    """Called with a GenerationChunk or an exception; the engine makes it thread-safe towards the loop."""
    cancelled: bool = False
    pending: int | None = None  # chosen but not yet fed to the model
    length: int = 0  # real tokens in this row's KV cache
    model_seconds: float = 0.0
    finish_reason: str | None = None


class Batch:
    """The running batch: one KV cache for all rows, left-padded, and its attention mask."""

    def __init__(self, model: Any, eos_ids: set[int], watermark: Any, device: torch.device) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.watermark = watermark  # a WatermarkLogitsProcessor, owned by this thread
        self.device = device
        self.rows: list[Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cached positions], 1 = real token

    # ------------------------------------------------------------------------------------------ forward

    def _forward(self, rows: Sequence[Row], ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 cache: DynamicCache, mixed: bool) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if mixed:  # a PeftModel: each row's own adapter in one forward pass
            kwargs["adapter_names"] = [row.adapter_key for row in rows]
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                             use_cache=True, logits_to_keep=1, **kwargs)
        logits = out.logits[:, -1, :].float()
        spent = time.perf_counter() - started
        for row in rows:  # every row waited for the whole pass: it is that row's model time
            row.model_seconds += spent
        return logits

    def admit(self, newcomers: list[Row], mixed: bool) -> None:
        """Prefill `newcomers` together (left-padded), choose their first token, and join them to the batch."""
        width = max(len(row.prompt_ids) for row in newcomers)
        pad = 0
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in newcomers],
                           device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in newcomers],
                            device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(newcomers, ids, mask, positions, cache, mixed)
        for row in newcomers:
            row.length = len(row.prompt_ids)
        self._merge(newcomers, cache, mask)
        self._choose(newcomers, logits)

    def _merge(self, newcomers: list[Row], cache: DynamicCache, mask: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.rows, self.cache, self.mask = list(newcomers), cache, mask
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], mask.shape[1])

        def left_pad(tensor: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - tensor.shape[dim]
            if missing == 0:
                return tensor
            shape = list(tensor.shape)
            shape[dim] = missing
            return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

        layers = []
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            keys = torch.cat([left_pad(old.keys, 2), left_pad(new.keys, 2)], dim=0)
            values = torch.cat([left_pad(old.values, 2), left_pad(new.values, 2)], dim=0)
            layers.append((keys, values))
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.mask = torch.cat([left_pad(self.mask, 1), left_pad(mask, 1)], dim=0)
        self.rows += newcomers

    def step(self, mixed: bool) -> None:
        """Feed every row's pending token, choose each row's next one."""
        assert self.cache is not None and self.mask is not None
        ids = torch.tensor([[row.pending] for row in self.rows], device=self.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        positions = torch.tensor([[row.length] for row in self.rows], device=self.device)
        logits = self._forward(self.rows, ids, self.mask, positions, self.cache, mixed)
        for row in self.rows:
            row.length += 1
        self._choose(self.rows, logits)

    # ------------------------------------------------------------------------------------------ choice

    def _choose(self, rows: Sequence[Row], logits: torch.Tensor) -> None:
        chosen: list[int] = []
        greedy = logits.argmax(dim=-1).tolist()
        for index, row in enumerate(rows):
            sampled = row.temperature >= GREEDY_BELOW_TEMPERATURE
            if not row.watermark and not sampled:
                chosen.append(greedy[index])
                continue
            scores = logits[index:index + 1]
            if sampled:
                scores = _top_p(scores / row.temperature, row.top_p)
            if row.watermark:  # after the warpers, as transformers' generate orders it
                context = (row.prompt_ids + row.tail.ids)[-1:]
                scores = self.watermark(torch.tensor([context], device=self.device), scores)
            probs = torch.softmax(scores, dim=-1) if sampled else None
            if probs is None or not bool(torch.isfinite(probs).all()):
                # One row's scores that are not numbers must not fail every other row of the batch: multinomial
                # raises for all of them.
                chosen.append(int(torch.nan_to_num(scores, nan=float("-inf")).argmax(dim=-1)))
            else:
                chosen.append(int(torch.multinomial(probs[0], 1, generator=row.generator)))
        for row, token in zip(rows, chosen, strict=True):
            self._accept(row, token)

    def _accept(self, row: Row, token: int) -> None:
        if token in self.eos_ids:
            row.finish_reason = "stop"
            text = row.tail.take(final=True)
        else:
            row.tail.push(token)
            row.pending = token
            stop = row.tail.stop_at() if row.tail.stops else None
            if stop is not None:
                row.finish_reason = "stop"
                text = row.tail.take(final=True, end=stop)
            elif len(row.tail.ids) >= row.max_new_tokens:
                row.finish_reason = "length"
                text = row.tail.take(final=True)
            else:
                text = row.tail.take(final=False)
        if row.finish_reason is not None:
            row.emit(GenerationChunk(text=text, finish_reason=row.finish_reason,
                                     prompt_tokens=len(row.prompt_ids), completion_tokens=len(row.tail.ids),
                                     model_seconds=row.model_seconds))
        elif text:
            row.emit(GenerationChunk(text=text))

    # ------------------------------------------------------------------------------------------ upkeep

    def retire(self) -> list[Row]:
        """Drop finished and cancelled rows from the batch (and the cache); returns them."""
        gone = [row for row in self.rows if row.finish_reason is not None or row.cancelled]
        if not gone:
            return []
        keep = [i for i, row in enumerate(self.rows) if row.finish_reason is None and not row.cancelled]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache, self.mask = None, None
            return gone
        assert self.cache is not None and self.mask is not None
        index = torch.tensor(keep, device=self.device)
        self.mask = self.mask[index]
        # Columns that are padding in every remaining row are dead weight: cut them.
        first_real = int(self.mask.any(dim=0).int().argmax())
        self.mask = self.mask[:, first_real:]
        layers = [(layer.keys[index, :, first_real:], layer.values[index, :, first_real:])
                  for layer in self.cache.layers]
        self.cache = DynamicCache(ddp_cache_data=layers)
        return gone

    def fail_all(self, error: BaseException) -> list[Row]:
        rows, self.rows, self.cache, self.mask = self.rows, [], None, None
        for row in rows:
            row.emit(error)
        return rows


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches `top_p` (at least one)."""
    if top_p >= 1.0:
        return scores
    ordered, order = scores.sort(dim=-1, descending=True)
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative - ordered.softmax(dim=-1) >= top_p  # tokens entirely past the nucleus
    drop[..., 0] = False
    return scores.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
