"""JSON from outside the process (request bodies, bus entries, dataset lines, model outputs, files given on the
command line), parsed so that every way it can be bad is a ValueError.

`json.loads` raises RecursionError, not ValueError, for nesting deeper than the interpreter's recursion limit
(`[[[[...]]]]`, 2 KB is enough), and every caller's `except ValueError` let it through: a 500 with a
traceback from the gateway, an entry a consumer could neither handle nor refuse. `parse_json` turns it into
a `json.JSONDecodeError` (what callers already catch for malformed JSON) that says what was wrong."""

from __future__ import annotations

import json
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


def parse_json(data: str | bytes | bytearray) -> Any:
    """`json.loads`, with too-deep nesting a JSONDecodeError (a ValueError) like any other malformed JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        doc = data if isinstance(data, str) else bytes(data[:64]).decode("utf-8", "replace")
        raise JSONNestedTooDeep(doc[:64]) from None


_DECODER = json.JSONDecoder()


def parse_json_prefix(text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON document that begins at `text[start]` and where it ends (`JSONDecoder.raw_decode`), with
    too-deep nesting a JSONDecodeError as in `parse_json`."""
    try:
        return _DECODER.raw_decode(text, start)
    except RecursionError:
        raise JSONNestedTooDeep(text[start:start + 64]) from None
