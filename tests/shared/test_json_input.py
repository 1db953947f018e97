"""JSON from outside: nesting too deep for the decoder is a JSONDecodeError like any malformed JSON, so every
`except ValueError` that guards a parse also guards this (json.loads raises RecursionError)."""

from __future__ import annotations

import json
import sys

import pytest

from shared.json_input import (
    JSONNestedTooDeep,
    JSONNumberTooLong,
    parse_json,
    parse_json_prefix,
    without_lone_surrogates,
)


@pytest.mark.parametrize("document", [
    b"[" * 5_000 + b"]" * 5_000,
    '{"a":' * 3_000 + "1" + "}" * 3_000,
    bytearray(b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
])
def test_nesting_too_deep_is_a_decode_error_that_says_so(document: str | bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        parse_json(document)
    assert isinstance(caught.value, JSONNestedTooDeep) and isinstance(caught.value, ValueError)
    assert str(caught.value) == f"nested more than about {sys.getrecursionlimit()} levels deep"
    with pytest.raises(RecursionError):  # what the guard is for
        json.loads(document)


def test_anything_else_parses_or_fails_as_json_loads_does() -> None:
    assert parse_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert parse_json("[" * 200 + "]" * 200) is not None  # deep, but within reach
    with pytest.raises(json.JSONDecodeError, match="Expecting"):
        parse_json("{not json")
    with pytest.raises(UnicodeDecodeError):
        parse_json(b'"\xff"')


def test_an_integer_too_long_to_convert_is_a_decode_error_that_says_so() -> None:
    document = '{"tree_size": ' + "9" * 5_000 + "}"
    with pytest.raises(ValueError, match="Exceeds the limit"):  # what json.loads raises: not a JSONDecodeError
        json.loads(document)
    for parse in (parse_json, lambda text: parse_json_prefix(text, 0)):
        with pytest.raises(json.JSONDecodeError) as caught:
            parse(document)
        assert isinstance(caught.value, JSONNumberTooLong)
        assert str(caught.value) == f"holds an integer of more than {sys.get_int_max_str_digits()} digits"
    assert parse_json('{"n": ' + "9" * 4_000 + "}")["n"] > 0  # long, but within the limit


def test_duplicate_keys_are_refused_only_when_asked() -> None:
    document = '{"a": {"text": "shown", "text": "verified"}}'
    assert parse_json(document) == {"a": {"text": "verified"}}  # json.loads' own rule: the last one
    with pytest.raises(json.JSONDecodeError, match="names the key 'text' twice in one object"):
        parse_json(document, unique_keys=True)
    assert parse_json('{"a": 1, "b": {"a": 2}}', unique_keys=True) == {"a": 1, "b": {"a": 2}}


def test_lone_surrogates_become_replacement_characters() -> None:
    text = parse_json('"a\\ud800b\\ud83d\\ude00c\\udfff"')
    assert without_lone_surrogates(text) == "a\ufffdb\U0001f600c\ufffd"
    without_lone_surrogates(text).encode("utf-8")
