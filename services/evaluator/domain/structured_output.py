"""Does a model output satisfy the job's output contract: parse it as JSON and validate it against the JSON
Schema (Draft 2020-12) the job declared. Pure: jsonschema validates in memory and, without a registry, never
retrieves a remote $ref."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from shared.json_input import parse_json, parse_json_prefix

NOT_JSON = "not_json"


@dataclass(frozen=True)
class SchemaCheck:
    parsed: bool
    valid: bool
    reason: str | None
    """None when valid; `not_json`, or the JSON Schema keyword that failed first (required, type, ...)."""


def parse_json_output(text: str, *, lenient: bool = False) -> tuple[bool, Any]:
    """(parsed, value). Strict: the whole output, surrounding whitespace aside, is one JSON document; that is
    what a program consuming the output would parse. Lenient: the first JSON object or array in the text
    (after a code fence or a lead-in sentence), anything after it ignored."""
    stripped = text.strip()
    try:
        return True, parse_json(stripped)
    except ValueError:
        if not lenient:
            return False, None
    for start, char in enumerate(stripped):
        if char in "{[":
            try:
                value, _ = parse_json_prefix(stripped, start)
            except ValueError:
                continue
            return True, value
    return False, None


class OutputSchema:
    """A job's output_schema, compiled once and applied to every output."""

    def __init__(self, schema: dict[str, Any], *, lenient: bool = False) -> None:
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)
        self.lenient = lenient

    def check(self, output: str) -> SchemaCheck:
        parsed, value = parse_json_output(output, lenient=self.lenient)
        if not parsed:
            return SchemaCheck(parsed=False, valid=False, reason=NOT_JSON)
        error = best_match(self._validator.iter_errors(value))  # deterministic: the most relevant one
        if error is None:
            return SchemaCheck(parsed=True, valid=True, reason=None)
        return SchemaCheck(parsed=True, valid=False, reason=str(error.validator))
