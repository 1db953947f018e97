"""CLI start-up: `tunegate` imports a verb's module only when that verb runs, and the lazy table in
services/cli/main.py stays in step with what each service's `register(app)` declares.

Start-up time itself is measured in bench/cli_startup.py; here we check what gets imported."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from services.cli.main import VERBS, LazyCommand, app, children_of

REPO = Path(__file__).resolve().parents[2]

# Modules that cost from a tenth of a second to seconds to import and that no light verb needs.
HEAVY = (
    "presidio_analyzer",
    "presidio_anonymizer",
    "spacy",
    "torch",
    "transformers",
    "faststream",
    "sqlalchemy",
    "fastapi",
    "opentelemetry.sdk",
    "httpx",
    "redis",
)

PROBE = """
import json, sys
from services.cli.main import app
try:
    app(sys.argv[1:], prog_name="tunegate")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(name for name in json.loads({heavy!r}) if name in sys.modules)
print("PROBE " + json.dumps({{"exit": code, "heavy": heavy}}))
"""


def probe(home: Path, *args: str) -> dict[str, Any]:
    """Run `tunegate ARGS` in a fresh interpreter; its exit status and the heavy modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEGATE_")}
    env.update(TUNEGATE_HOME=str(home), PYTHONPATH=str(REPO))
    code = PROBE.format(heavy=json.dumps(HEAVY))
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"no probe result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1].removeprefix("PROBE "))


LIGHT_VERBS = [
    # (arguments, expected exit status, heavy modules the verb legitimately needs)
    (("--help",), 0, set()),
    (("jobs", "list", "--help"), 0, set()),
    (("jobs", "list"), 1, set()),  # no stack: fails before loading the HTTP client
    (("audit", "tail", "--help"), 0, set()),
    (("audit", "tail"), 2, {"sqlalchemy"}),  # no ledger: the store is what finds that out
    (("submit", "--help"), 0, set()),
    (("scan", "--help"), 0, set()),
    (("models", "--help"), 0, set()),
    (("verify-response", "--help"), 0, set()),
    (("verify-response", "--header", "v=1", "--text", "missing.txt"), 2, set()),  # torch only with --base
    (("keys", "create", "--help"), 0, set()),
]


@pytest.mark.parametrize(
    ("args", "exit_code", "allowed"), [pytest.param(*case, id=" ".join(case[0])) for case in LIGHT_VERBS]
)
def test_light_verbs_import_no_heavy_module(
    tmp_path: Path, args: tuple[str, ...], exit_code: int, allowed: set[str]
) -> None:
    result = probe(tmp_path / "home", *args)
    assert result["exit"] == exit_code
    assert set(result["heavy"]) - allowed == set(), f"`tunegate {' '.join(args)}` imported {result['heavy']}"


def test_probe_sees_presidio_when_scan_really_runs(tmp_path: Path) -> None:
    """The probe can see a heavy import: resolving `scan` for real reaches the scan engine's modules."""
    result = probe(tmp_path / "home", "scan", str(tmp_path / "missing.jsonl"))
    assert "presidio_analyzer" in result["heavy"]


def resolve(command: Any) -> Any:
    return command.real() if isinstance(command, LazyCommand) else command


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command path under `command`, lazy verbs resolved, with its click command."""
    command = resolve(command)
    yield path, command
    if isinstance(command, TyperGroup):
        for name, child in command.commands.items():
            yield from walk(child, (*path, name))


def first_paragraph(text: str) -> str:
    return inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ").strip()


def test_top_level_help_lists_every_verb_with_its_line() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {words[0]: " ".join(words[1:]) for row in result.output.splitlines() if (words := row.strip("│ ").split())}
    for path in children_of("", VERBS):
        assert path in rows, f"`tunegate --help` does not list {path}"
        assert rows[path] == VERBS[path].help


def test_every_verb_resolves_and_shows_its_help() -> None:
    root = typer.main.get_command(app)
    paths = [path for path, _ in walk(root) if path]
    assert {p[0] for p in paths if len(p) == 1} == set(children_of("", VERBS))
    assert ("jobs", "watch") in paths and ("audit", "tail") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"tunegate {' '.join(path)} --help: {result.output}"
        assert "Usage:" in result.output


def test_table_help_is_each_verbs_own_first_paragraph() -> None:
    root = typer.main.get_command(app)
    for path, command in walk(root):
        if path and " ".join(path) in VERBS:
            assert VERBS[" ".join(path)].help == first_paragraph(command.help or ""), " ".join(path)


def test_table_lists_exactly_what_each_service_registers() -> None:
    """A verb a service adds in its `register(app)` must appear in VERBS, pointing at the same object."""
    declared: dict[str, object] = {}
    cli_files = sorted([*(REPO / "services").glob("*/cli.py"), *(REPO / "services").glob("*/entrypoints/cli.py")])
    for cli_file in cli_files:
        module = importlib.import_module(".".join(cli_file.relative_to(REPO).with_suffix("").parts))
        holder = typer.Typer()
        module.register(holder)
        for info in holder.registered_commands:
            assert info.callback is not None
            declared[info.name or info.callback.__name__.replace("_", "-")] = info.callback
        for group in holder.registered_groups:
            assert group.name is not None
            declared[group.name] = group.typer_instance
    from_services = {
        path
        for path, verb in VERBS.items()
        if " " not in path and not verb.target.startswith("services.cli.")  # tunegate's own verbs
    }
    assert set(declared) == from_services
    for name, implementation in declared.items():
        module_name, _, attr = VERBS[name].target.partition(":")
        assert getattr(importlib.import_module(module_name), attr) is implementation, name
