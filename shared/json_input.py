"""JSON from outside the process (request bodies, bus entries, dataset lines, model outputs, files given on the
command line), parsed so that every way it can be bad is a ValueError.

`json.loads` raises RecursionError, not ValueError, for nesting deeper than the interpreter's recursion limit
(`[[[[...]]]]`, 2 KB is enough), and every caller's `except ValueError` let it through: a 500 with a
traceback from the gateway, an entry a consumer could neither handle nor refuse. An integer of more than
4,300 digits is a plain ValueError, which callers catching `json.JSONDecodeError` let through. `parse_json`
turns both into a `json.JSONDecodeError` (what callers already catch for malformed JSON) that says what was
wrong."""

from __future__ import annotations

import json
import re
import sys
from typing import Any


class JSONNestedTooDeep(json.JSONDecodeError):
    """Nested deeper than the decoder can follow. Its message names no position: the decoder gave up while
    descending, not at a character it could point to."""

    def __init__(self, doc: str) -> None:
        super().__init__(f"nested more than about {sys.getrecursionlimit()} levels deep", doc, 0)
        self.args = (self.msg,)

    def __str__(self) -> str:
        return self.msg


class JSONNumberTooLong(json.JSONDecodeError):
    """An integer with more digits than the interpreter converts (sys.get_int_max_str_digits())."""

    def __init__(self, doc: str) -> None:
        super().__init__(f"holds an integer of more than {sys.get_int_max_str_digits()} digits", doc, 0)
        self.args = (self.msg,)

    def __str__(self) -> str:
        return self.msg


def _head(data: str | bytes | bytearray) -> str:
    return data[:64] if isinstance(data, str) else bytes(data[:64]).decode("utf-8", "replace")


class JSONDuplicateKey(json.JSONDecodeError):
    """An object naming the same key twice, where that is refused (`parse_json(unique_keys=True)`)."""

    def __init__(self, key: str, doc: str) -> None:
        super().__init__(f"names the key {key[:64]!r} twice in one object", doc, 0)
        self.args = (self.msg,)

    def __str__(self) -> str:
        return self.msg


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise JSONDuplicateKey(key, "")
        found[key] = value
    return found


def parse_json(data: str | bytes | bytearray, *, unique_keys: bool = False) -> Any:
    """`json.loads`, with too-deep nesting and too-long integers a JSONDecodeError (a ValueError) like any
    other malformed JSON; undecodable bytes stay a UnicodeDecodeError, as json.loads raises them.
    `unique_keys`: an object naming a key twice is a JSONDecodeError too. json.loads keeps the last one, other
    parsers the first: where a document is checked (a signed answer) and then shown by something else, the
    two could read different texts."""
    try:
        return json.loads(data, object_pairs_hook=_unique_keys) if unique_keys else json.loads(data)
    except RecursionError:
        raise JSONNestedTooDeep(_head(data)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise JSONNumberTooLong(_head(data)) from None


_DECODER = json.JSONDecoder()


def parse_json_prefix(text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON document that begins at `text[start]` and where it ends (`JSONDecoder.raw_decode`), with
    too-deep nesting a JSONDecodeError as in `parse_json`."""
    try:
        return _DECODER.raw_decode(text, start)
    except RecursionError:
        raise JSONNestedTooDeep(text[start:start + 64]) from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise JSONNumberTooLong(text[start:start + 64]) from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """`text` with lone surrogates made U+FFFD. JSON may escape half a UTF-16 pair (`"\\ud800"`) and
    `json.loads` keeps it; such a string cannot be encoded as UTF-8, so it cannot be hashed, stored, logged
    or sent, and wherever one got through it ended the request in a 500. (Pairs that do match are already
    one character after json.loads.)"""
    return _LONE_SURROGATE.sub("\ufffd", text)
