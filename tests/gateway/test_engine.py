"""The gateway's local engine on the real `tiny` base with two LoRA adapters that answer differently: rows of
different adapters batched together get exactly what they get alone, streaming, stops, lengths, adapters
loaded and unloaded while serving, the watermark, and the pool that maps versions to engines."""

from __future__ import annotations

import asyncio
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.support.random_adapter import make_random_adapter
from services.gateway.adapters.decoding import TextTail
from services.gateway.adapters.engine import (
    AdapterNotLoaded,
    EngineClosed,
    GenerationRequest,
    LocalEngine,
    watermark_config,
)
from services.gateway.adapters.engine_pool import EnginePool
from shared.models.bases import BaseModelInfo

pytestmark = pytest.mark.anyio

A, B = "orders.v1", "orders.v2"
QUESTIONS = ("Extract the order as JSON: Ada Berg from Oslo ordered 2 lamps.", "Hi", "Where is my parcel?")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def adapter_dirs(tiny_base: BaseModelInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {A: make_random_adapter(tiny_base.path, root / "a", 1),
            B: make_random_adapter(tiny_base.path, root / "b", 2)}


@pytest.fixture(scope="module")
def engine(tiny_base: BaseModelInfo, adapter_dirs: dict[str, Path]) -> Iterator[LocalEngine]:
    engine = LocalEngine(tiny_base.path, max_batch=16, batch_wait_ms=20)
    for name, folder in adapter_dirs.items():
        engine.load_adapter(name, folder)
    yield engine
    asyncio.run(engine.aclose())


def ask(engine: LocalEngine, adapter: str | None, question: str = QUESTIONS[0], **options: object) -> GenerationRequest:
    prompt = engine.render_chat([{"role": "user", "content": question}])
    return GenerationRequest(adapter=adapter, prompt=prompt, **{"max_new_tokens": 16, **options})  # type: ignore[arg-type]


async def test_the_adapters_answer_differently_from_each_other_and_the_base(engine: LocalEngine) -> None:
    texts = [(await engine.complete(ask(engine, name))).text for name in (A, B, None)]
    assert all(texts)
    assert len(set(texts)) == 3, texts


async def test_a_mixed_batch_gives_each_row_what_it_gets_alone(engine: LocalEngine) -> None:
    requests = [ask(engine, name, question) for name in (A, B, None) for question in QUESTIONS]
    alone = [await engine.complete(request) for request in requests]
    engine.largest_batch = 0
    together = await asyncio.gather(*(engine.complete(request) for request in requests))
    assert engine.largest_batch == len(requests)  # one burst really was decoded as one batch
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.completion_tokens for c in together] == [c.completion_tokens for c in alone]
    assert len({c.text for c in together}) > 3  # adapters and questions really answer differently


async def test_a_vanishing_temperature_is_greedy_and_fails_no_neighbour(engine: LocalEngine) -> None:
    """temperature 1e-300 passed the schema, made the softmax NaN, and multinomial's error failed every row of
    the batch (any client could fail everyone else's requests on the engine)."""
    neighbours = [ask(engine, name, question, temperature=0.7, seed=3) for name in (A, B) for question in QUESTIONS]
    alone = [await engine.complete(request) for request in neighbours]
    greedy = await engine.complete(ask(engine, A))
    results = await asyncio.gather(*(engine.complete(request) for request in neighbours),
                                   engine.complete(ask(engine, A, temperature=1e-300)),
                                   engine.complete(ask(engine, B, temperature=1e-30, top_p=1e-9)))
    assert [c.text for c in results[:len(neighbours)]] == [c.text for c in alone]
    assert results[len(neighbours)].text == greedy.text


async def test_streamed_chunks_add_up_to_the_complete_text(engine: LocalEngine) -> None:
    request = ask(engine, A, max_new_tokens=24)
    chunks = [chunk async for chunk in engine.stream(request)]
    whole = await engine.complete(request)
    assert len(chunks) > 2
    assert "".join(c.text for c in chunks) == whole.text
    assert [c.finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    last = chunks[-1]
    assert (last.finish_reason, last.completion_tokens) == (whole.finish_reason, whole.completion_tokens)
    assert last.prompt_tokens == engine.count_tokens(request.prompt)
    assert last.model_seconds > 0


async def test_max_new_tokens_ends_with_length(engine: LocalEngine) -> None:
    chunk = await engine.complete(ask(engine, None, max_new_tokens=5))
    assert (chunk.finish_reason, chunk.completion_tokens) == ("length", 5)


async def test_a_stop_string_ends_the_text_before_it(engine: LocalEngine) -> None:
    full = (await engine.complete(ask(engine, None, max_new_tokens=32))).text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    expected = full[:full.find(stop)]
    chunks = [c async for c in engine.stream(ask(engine, None, max_new_tokens=32, stop=("zzzz-never", stop)))]
    assert "".join(c.text for c in chunks) == expected
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].completion_tokens < 32


async def test_sampling_is_reproducible_with_a_seed(engine: LocalEngine) -> None:
    def sampled(seed: int) -> GenerationRequest:
        return ask(engine, B, temperature=1.0, top_p=0.9, seed=seed, max_new_tokens=24)

    first, again, other = [await engine.complete(sampled(s)) for s in (7, 7, 8)]
    assert first.text == again.text
    assert first.text != other.text


async def test_bad_requests_are_refused_with_a_reason(engine: LocalEngine) -> None:
    with pytest.raises(AdapterNotLoaded, match=re.escape("'nobody.v1' is not loaded")):
        await engine.complete(ask(engine, "nobody.v1"))
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1"):
        await engine.complete(ask(engine, None, max_new_tokens=0))
    with pytest.raises(ValueError, match="exceed the model's context"):
        await engine.complete(ask(engine, None, max_new_tokens=engine.context_length))


async def test_adapters_load_and_unload_without_a_restart(engine: LocalEngine, tiny_base: BaseModelInfo,
                                                          tmp_path: Path) -> None:
    before = (await engine.complete(ask(engine, B))).text
    extra = make_random_adapter(tiny_base.path, tmp_path / "c", 3)
    engine.load_adapter("extra.v1", extra)
    engine.load_adapter("extra.v1", extra)  # idempotent
    assert "extra.v1" in engine.adapters()
    assert (await engine.complete(ask(engine, "extra.v1"))).text not in {before, ""}

    # A request already running on an adapter finishes when the adapter is unloaded under it.
    alone = (await engine.complete(ask(engine, "extra.v1", max_new_tokens=24))).text
    stream = engine.stream(ask(engine, "extra.v1", max_new_tokens=24))
    first = await anext(stream)
    engine.unload_adapter("extra.v1")
    with pytest.raises(AdapterNotLoaded, match=re.escape("'extra.v1' is not loaded")):
        await engine.complete(ask(engine, "extra.v1"))
    rest = [chunk async for chunk in stream]
    assert first.text + "".join(c.text for c in rest) == alone
    assert "extra.v1" not in engine.adapters()
    assert (await engine.complete(ask(engine, B))).text == before  # the others are untouched

    engine.load_adapter("extra.v1", extra)  # back again, same weights, same answer
    assert (await engine.complete(ask(engine, "extra.v1", max_new_tokens=24))).text == alone
    engine.unload_adapter("extra.v1")


async def test_a_client_that_goes_away_leaves_the_engine_serving(engine: LocalEngine) -> None:
    stream = engine.stream(ask(engine, A, max_new_tokens=64))
    await anext(stream)
    await stream.aclose()
    assert (await engine.complete(ask(engine, A))).finish_reason in {"stop", "length"}


async def test_watermarked_rows_carry_the_watermark_and_only_they(engine: LocalEngine) -> None:
    import torch
    from transformers import WatermarkDetector

    questions = ("Tell me about the city of Lisbon", "Describe your favourite order", QUESTIONS[0])
    plain = [ask(engine, None, q, max_new_tokens=80) for q in questions]
    marked = [ask(engine, None, q, max_new_tokens=80, watermark=True) for q in questions]
    results = await asyncio.gather(*(engine.complete(r) for r in plain + marked))
    plain_texts, marked_texts = [r.text for r in results[:3]], [r.text for r in results[3:]]
    assert all(p != m for p, m in zip(plain_texts, marked_texts, strict=True))
    assert plain_texts == [(await engine.complete(r)).text for r in plain]  # the plain rows were not touched

    detector = WatermarkDetector(model_config=engine.model_config, device="cpu",
                                 watermarking_config=watermark_config(engine.watermark_key),
                                 ignore_repeated_ngrams=True)

    def z_score(text: str) -> float:
        ids = torch.tensor([engine.tokenizer.encode(text, add_special_tokens=False)])
        return float(detector(ids, return_dict=True).z_score[0])

    marked_z = [z_score(t) for t in marked_texts]
    plain_z = [z_score(t) for t in plain_texts]
    assert min(marked_z) > max(plain_z), (marked_z, plain_z)
    assert min(marked_z) > 2.0, marked_z


def tar_folder(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return target


async def test_the_pool_shares_a_base_between_adapters_and_gives_a_full_model_its_own(
    tiny_base: BaseModelInfo, adapter_dirs: dict[str, Path], tmp_path: Path,
) -> None:
    pool = EnginePool(tmp_path / "unpacked", batch_wait_ms=0)
    try:
        with pytest.raises(ValueError, match=re.escape("model version id '../evil' is not allowed")):
            pool.load("../evil", tiny_base.path, "lora", adapter_dirs[A])
        pool.load(A, tiny_base.path, "lora", tar_folder(adapter_dirs[A], tmp_path / "a.tar"))
        pool.load(B, tiny_base.path, "lora", adapter_dirs[B])
        pool.load("whole.v1", tiny_base.path, "full", tar_folder(tiny_base.path, tmp_path / "full.tar"))
        engine_a, name_a = pool.engine_for(A)
        engine_b, name_b = pool.engine_for(B)
        engine_full, name_full = pool.engine_for("whole.v1")
        assert engine_a is engine_b and (name_a, name_b, name_full) == (A, B, None)
        assert engine_full is not engine_a
        assert (tmp_path / "unpacked" / A / "adapter_config.json").is_file()

        # The full "fine-tune" here is the base itself: it answers as the base does.
        base_answer = await engine_a.complete(ask(engine_a, None))
        assert (await engine_full.complete(ask(engine_full, None))).text == base_answer.text

        await pool.unload(A)
        await pool.unload("whole.v1")
        assert pool.versions() == [B]
        assert not (tmp_path / "unpacked" / A).exists()
        with pytest.raises(AdapterNotLoaded, match=re.escape("'whole.v1' is not served here")):
            pool.engine_for("whole.v1")
        assert (await engine_b.complete(ask(engine_b, B))).finish_reason in {"stop", "length"}
    finally:
        await pool.aclose()


def test_text_deltas_keep_multibyte_characters_whole_and_hold_back_a_possible_stop(engine: LocalEngine) -> None:
    text = "Ünïcode café ✓ 東京 ok"
    ids = engine.tokenizer.encode(text, add_special_tokens=False)
    tail = TextTail(engine.tokenizer, ())
    deltas = []
    for token in ids:
        tail.push(token)
        deltas.append(tail.take(final=False))
    assert "".join(deltas) == text
    assert not any("\ufffd" in delta for delta in deltas)
    assert len(ids) > len(text.split())  # characters really were split over several tokens

    tail = TextTail(engine.tokenizer, ("✓ 東京",))
    emitted = ""
    for token in ids:
        tail.push(token)
        stop = tail.stop_at()
        if stop is not None:
            emitted += tail.take(final=True, end=stop)
            break
        emitted += tail.take(final=False)
        assert not emitted.endswith(("✓", "✓ ", "✓ 東"))  # a stop's beginning never goes out early
    assert emitted == "Ünïcode café "


async def test_closing_drains_or_fails_what_is_in_flight(tiny_base: BaseModelInfo) -> None:
    draining = LocalEngine(tiny_base.path, batch_wait_ms=0)
    request = ask(draining, None, max_new_tokens=40)
    alone = (await draining.complete(request)).text
    stream = draining.stream(request)
    first = await anext(stream)
    closing = asyncio.create_task(draining.aclose(drain=True))
    await asyncio.sleep(0)
    with pytest.raises(EngineClosed, match="closed"):
        await draining.complete(request)
    assert first.text + "".join([c.text async for c in stream]) == alone  # accepted: it finished
    await closing

    failing = LocalEngine(tiny_base.path, batch_wait_ms=0)
    stream = failing.stream(ask(failing, None, max_new_tokens=200))
    await anext(stream)
    await failing.aclose()
    with pytest.raises(EngineClosed, match="the engine was closed"):
        async for _ in stream:
            pass
