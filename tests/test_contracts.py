"""The event contract is complete and written once: every catalog type has a declared producer and
consumer (or is reserved for a named service not built yet), the services' handlers match the roster,
and docs/asyncapi.yaml is what the generator makes of them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from shared import asyncapi
from shared.bus.definition import DefinitionError, ServiceDefinition
from shared.events.catalog import CATALOG
from shared.events.payloads import DatasetScanRequested
from shared.roster import RESERVED, SERVICES, consumers_of, producers_of, service
from tests.support import REPO_ROOT


def test_every_catalog_type_has_a_producer_and_a_consumer_or_is_reserved() -> None:
    reserved = {t for r in RESERVED for t in r.types}
    assert reserved <= set(CATALOG), "reserved types must be catalog types"
    for event_type in CATALOG:
        if event_type in reserved:
            assert not producers_of(event_type), f"{event_type} is reserved but has a producer"
            continue
        assert producers_of(event_type), f"{event_type}: no service or principal may emit it"
        assert consumers_of(event_type), f"{event_type}: no service consumes it"


def test_every_roster_type_is_in_the_catalog() -> None:
    for spec in SERVICES:
        for event_type in (*spec.emits, *(t for t in spec.consumes if t != "*")):
            assert event_type in CATALOG, f"{spec.name} names unknown type {event_type}"


@pytest.mark.parametrize("name", [s.name for s in SERVICES if not s.consumes_every_type()])
def test_each_service_handles_exactly_what_the_roster_says(name: str, tmp_path: Any) -> None:
    import importlib

    from shared.config import Settings

    module_name, function = service(name).bootstrap.split(":")
    if name == "trainer":
        pytest.importorskip("torch")
    settings = Settings(home=tmp_path / "home", redis_url="redis://127.0.0.1:1/0")
    definition = getattr(importlib.import_module(module_name), function)(settings)
    definition.check_against_roster()
    assert set(definition.handlers_by_type()) == set(service(name).consumes)


@pytest.mark.parametrize("name", [s.name for s in SERVICES])
def test_each_service_names_an_entry_point_and_a_settings_class_that_exist(name: str) -> None:
    import importlib

    from pydantic_settings import BaseSettings

    spec = service(name)
    for target in (spec.bootstrap, spec.settings, *([spec.http] if spec.http else [])):
        module_name, attr = target.split(":")
        assert hasattr(importlib.import_module(module_name), attr), target
    module_name, attr = spec.settings.split(":")
    assert issubclass(getattr(importlib.import_module(module_name), attr), BaseSettings)
    assert (REPO_ROOT / "services" / name / "__main__.py").exists()


def test_a_definition_that_differs_from_the_roster_is_refused_at_start() -> None:
    async def handler(event: Any, ctx: Any) -> None:
        return None

    wrong = ServiceDefinition(name="registry", handlers={DatasetScanRequested: handler})
    with pytest.raises(DefinitionError, match=r"no handler for: dataset\.erasure\.shredded, dataset\.scan\.failed"):
        wrong.check_against_roster()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_document_is_generated_and_its_references_resolve() -> None:
    committed = (REPO_ROOT / "docs" / "asyncapi.yaml").read_text()
    assert committed == asyncapi.render(), "docs/asyncapi.yaml is stale: python -m shared.asyncapi > docs/asyncapi.yaml"
    document = yaml.safe_load(committed)
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]
    assert {m["name"] for m in document["components"]["messages"].values()} == set(CATALOG)
