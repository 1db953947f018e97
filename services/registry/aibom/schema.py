"""Validation of an AIBOM against the official CycloneDX 1.6 JSON schema, as shipped by cyclonedx-python-lib
(with the SPDX licence list and the JSF signature schema it references), offline.

The schema files are read once per process (functools.cache) and registered under the URIs the BOM schema's
`$ref`s resolve to (http://cyclonedx.org/schema/<file>), so no reference is ever fetched over the network."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from shared.json_input import parse_json

SPEC_VERSION = "1.6"
SCHEMA_BASE = "http://cyclonedx.org/schema/"
# cyclonedx-python-lib keeps its copies of the official schemas here (file names carry `.SNAPSHOT`, and the
# BOM schema's $refs were rewritten to those names); the package pins the library's major versions.
_SCHEMA_PACKAGE = "cyclonedx.schema._res"
BOM_SCHEMA_FILE = "bom-1.6.SNAPSHOT.schema.json"
SPDX_SCHEMA_FILE = "spdx.SNAPSHOT.schema.json"
JSF_SCHEMA_FILE = "jsf-0.82.SNAPSHOT.schema.json"
MAX_ERRORS = 20  # a badly broken document would otherwise list thousands of consequences of one mistake


class SchemaUnavailable(RuntimeError):
    """The CycloneDX schema files are not installed (cyclonedx-python-lib missing or its layout changed)."""


def _load(name: str) -> dict[str, Any]:
    try:
        text = resources.files(_SCHEMA_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SchemaUnavailable(
            f"CycloneDX schema {name} not found in {_SCHEMA_PACKAGE} ({exc}); install cyclonedx-python-lib>=8,<12"
        ) from None
    document = parse_json(text)
    if not isinstance(document, dict):
        raise SchemaUnavailable(f"CycloneDX schema {name} is not a JSON object")
    return document


@cache
def _validator() -> Draft7Validator:
    bom = _load(BOM_SCHEMA_FILE)
    registry: Registry = Registry()
    for name in (BOM_SCHEMA_FILE, SPDX_SCHEMA_FILE, JSF_SCHEMA_FILE):
        document = bom if name == BOM_SCHEMA_FILE else _load(name)
        resource = Resource.from_contents(document, default_specification=DRAFT7)
        # Under the file name the $refs use, and under the schema's own $id (the official name).
        uris = {SCHEMA_BASE + name, str(document.get("$id") or SCHEMA_BASE + name)}
        registry = registry.with_resources((uri, resource) for uri in uris)
    return Draft7Validator(bom, registry=registry, format_checker=_format_checker())


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _format_checker() -> FormatChecker:
    """jsonschema's checkers, plus `date-time` (RFC 3339), which it checks only when rfc3339-validator is
    installed: the BOM's timestamps must be real times whatever else the host has."""
    checker = FormatChecker()  # a copy of the registered checkers: adding one here changes no global

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            return False
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        return True

    return checker


@cache
def spdx_license_ids() -> frozenset[str]:
    """Every SPDX licence id CycloneDX 1.6 accepts in `license.id`."""
    return frozenset(_load(SPDX_SCHEMA_FILE)["enum"])


def _path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _message(error: ValidationError) -> str:
    # An enum of hundreds of SPDX ids would drown the one value that is wrong.
    if error.validator == "enum" and isinstance(error.validator_value, list) and len(error.validator_value) > 20:
        return f"{error.instance!r} is not one of the {len(error.validator_value)} values the schema allows"
    return error.message


def _describe(error: ValidationError) -> str:
    # A oneOf/anyOf failure says only "is not valid under any of the given schemas"; the deepest sub-error
    # under the same document position usually names the real mistake.
    if error.context:
        deepest = max(error.context, key=lambda sub: len(sub.absolute_path))
        if len(deepest.absolute_path) >= len(error.absolute_path):
            return f"{_path(deepest)}: {_message(deepest)}"
    return f"{_path(error)}: {_message(error)}"


def validate_aibom(doc: Any) -> list[str]:
    """Problems of `doc` against CycloneDX 1.6, each as `<JSON path>: <what is wrong>`; [] when valid."""
    if not isinstance(doc, dict):
        return [f"$: an AIBOM is a JSON object, not {type(doc).__name__}"]
    problems: list[str] = []
    if doc.get("specVersion") != SPEC_VERSION:
        problems.append(f"$.specVersion: {doc.get('specVersion')!r} is not {SPEC_VERSION!r}")
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems.extend(_describe(error) for error in errors[:MAX_ERRORS])
    if len(errors) > MAX_ERRORS:
        problems.append(f"... and {len(errors) - MAX_ERRORS} more schema errors")
    return problems
