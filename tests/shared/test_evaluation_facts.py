"""Canary derivation, planting positions, the held-out split and the shared secret they depend on."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.evaluation.canaries import SHAPES, derive_canaries, planted_positions, random_candidates
from shared.evaluation.holdout import choose_held_out, split
from shared.evaluation.options import CanarySpec, EvaluationOptions
from shared.security.keys import load_or_create_secret

KEY = b"k" * 32


def test_canaries_come_from_the_key_and_job_alone_and_fit_their_shape() -> None:
    spec = CanarySpec(count=8, shape="api_key")
    values = derive_canaries(KEY, "job-1", spec)
    assert values == derive_canaries(KEY, "job-1", spec), "reproducible by whoever holds the key"
    assert len(set(values)) == 8
    shape = SHAPES["api_key"]
    assert all(len(v) == shape.length and set(v) <= set(shape.alphabet) for v in values)
    assert not set(values) & set(derive_canaries(b"x" * 32, "job-1", spec)), "another key, other canaries"
    assert not set(values) & set(derive_canaries(KEY, "job-2", spec)), "another job, other canaries"
    pins = derive_canaries(KEY, "job-1", CanarySpec(count=50, shape="pin"))
    assert all(len(p) == 6 and p.isdigit() for p in pins)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        derive_canaries(b"short", "job-1", spec)


def test_digits_are_drawn_without_bias() -> None:
    pins = derive_canaries(KEY, "job-1", CanarySpec(count=64, shape="pin"))
    counts = [sum(p.count(str(d)) for p in pins) for d in range(10)]
    # 384 digits: each of 10 expected ~38; a modulo bias towards low digits would show up as a skew.
    assert max(counts) < 65 and min(counts) > 15, counts


def test_candidates_exclude_the_canaries_and_respect_a_small_space() -> None:
    shape = SHAPES["pin"]
    canaries = set(derive_canaries(KEY, "job-1", CanarySpec(count=4, shape="pin")))
    candidates = random_candidates(shape, 500, seed=1, exclude=canaries)
    assert len(candidates) == len(set(candidates)) == 500 and not canaries & set(candidates)
    assert shape.space_bits == pytest.approx(19.93, abs=0.01)


def test_every_copy_of_every_canary_is_planted_once() -> None:
    spec = CanarySpec(count=5, repeats=3)
    slots = planted_positions(40, spec, seed="plant|job-1")
    placed = sorted(i for indices in slots.values() for i in indices)
    assert placed == sorted(list(range(5)) * 3)
    assert all(0 <= position <= 40 for position in slots)


def test_the_held_out_split_is_seeded_and_leaves_data_to_train_on() -> None:
    assert choose_held_out(100, 0.1, seed=3) == choose_held_out(100, 0.1, seed=3)
    assert choose_held_out(100, 0.1, seed=3) != choose_held_out(100, 0.1, seed=4)
    assert len(choose_held_out(100, 0.1, seed=3)) == 10
    assert len(choose_held_out(5, 0.1, seed=3)) == 1, "a positive fraction holds out at least one record"
    assert choose_held_out(1, 0.5, seed=3) == [], "never the only record"
    assert choose_held_out(100, 0.0, seed=3) == []
    records = [{"i": i} for i in range(6)]
    trained, held = split(records, [1, 4])
    assert [r["i"] for r in trained] == [0, 2, 3, 5] and [r["i"] for r in held] == [1, 4]


def test_evaluation_options_refuse_bad_schemas_and_sizes() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        EvaluationOptions(output_schema={"type": "nonsense"})
    with pytest.raises(ValidationError, match="over 16000 characters"):
        EvaluationOptions(output_schema={"description": "x" * 20_000})
    with pytest.raises(ValidationError):
        EvaluationOptions(holdout_fraction=0.9)
    with pytest.raises(ValidationError):
        CanarySpec(count=1000)


def _create(path: str) -> bytes:
    return load_or_create_secret(Path(path))


def test_racing_creators_of_a_shared_secret_all_read_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "canary.key"
    with ProcessPoolExecutor(4) as pool:
        keys = list(pool.map(_create, [str(path)] * 8))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != "canary.key"], "no temporary files left"
    path.write_text("zz")
    with pytest.raises(ValueError, match="not hex"):
        load_or_create_secret(path)
