"""`tunegate scan`: the data owner's pre-flight. Know before paying which examples would be rejected and why.

Exit status: 0 clean or redacted, 1 blocked, 2 invalid input (bad lines, unreadable file, bad policy)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.scanner.engine.workers import MAX_WORKERS
from shared.config import Settings

# The scan engine pulls in Presidio, spaCy and transformers (seconds of imports): `scan` imports it when it
# runs, so that every other `tunegate` verb starts at once.
if TYPE_CHECKING:
    from services.scanner.engine.pipeline import ScanResult

EXIT_OK, EXIT_BLOCKED, EXIT_INVALID = 0, 1, 2
LISTED_LINES = 25


def _summary(console: Console, result: ScanResult) -> None:
    colour = {"clean": "green", "redacted": "yellow", "blocked": "red", "invalid": "red"}[result.verdict]
    console.print(
        f"[bold {colour}]{result.verdict.upper()}[/]  {result.source_records} records ({result.kind}, "
        f"{result.container}), classification {result.classification}, {result.findings_count} findings, "
        f"{result.record_count} out, {result.dropped_records} dropped, {result.modified_records} redacted "
        f"in {result.seconds:.2f}s ({result.records_per_s:,.0f} records/s, {result.workers} worker(s))"
    )
    if result.totals and result.verdict != "invalid":  # findings of a half-valid file would mislead
        actions = sorted({a for per in result.totals.values() for a in per})
        table = Table(title="Findings per entity and action")
        table.add_column("entity")
        for action in actions:
            table.add_column(action, justify="right")
        for entity, per in result.totals.items():
            table.add_row(entity, *(str(per.get(a, 0)) for a in actions))
        console.print(table)
    if result.dropped_lines:
        shown = ", ".join(map(str, result.dropped_lines[:LISTED_LINES]))
        more = f" and {result.dropped_records - LISTED_LINES} more" if result.dropped_records > LISTED_LINES else ""
        console.print(f"dropped lines: {shown}{more}")
    if result.verdict == "invalid":
        console.print(f"[red]{result.issue_count} problem(s) in the input:[/]")
    for reason in result.blocking_reasons[:LISTED_LINES]:
        console.print(f"  [red]-[/] {reason}")
    if len(result.blocking_reasons) > LISTED_LINES:
        console.print(f"  ... and {len(result.blocking_reasons) - LISTED_LINES} more (see the report)")
    console.print(_detectors_line(result))
    console.print(f"fingerprint {result.fingerprint}")


def _detectors_line(result: ScanResult) -> str:
    """Said on every scan, so that a scan without NER is never read as a full one."""
    info = result.detectors
    count = f"{len(info.recognizers)} recognizers"
    if info.ner:
        return f"detectors: NER on ({info.ner_model} {info.ner_model_version}), {count}"
    return (
        f"detectors: [bold yellow]NER OFF[/] (--no-ner): names and places in free text were not looked for; "
        f"{count}"
    )


def _output_problem(target: Path, what: str, protected: dict[str, Path | None], earlier: dict[str, Path]) -> str | None:
    """Why `target` cannot take the report or redacted copy, checked before the scan (minutes of work lost
    to a typo otherwise), or None. `protected`: inputs that must never be overwritten (a redacted copy
    written over its own source destroys the original); `earlier`: outputs already claimed."""
    real = os.path.realpath(target)
    for name, other in {**{k: v for k, v in protected.items() if v is not None}, **earlier}.items():
        same = real == os.path.realpath(other)
        # A hard link or a bind mount; when one of them does not exist (yet) the real paths alone decide.
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(target, other)
        if same:
            return f"{what} {target} is the same file as the {name} ({other}): it would be overwritten"
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        return f"{what} {target}: cannot be written ({exc.strerror or exc})"
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            return f"{what} {target} is a directory; give the path of a file"
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            return f"{what} {target} is a named pipe or a socket; give the path of a file"
        if not os.access(target, os.W_OK):
            return f"{what} {target}: no permission to write it"
        return None
    parent = Path(real).parent
    if not parent.is_dir():
        return f"{what} {target}: the folder {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{what} {target}: no permission to create files in {parent}"
    return None


def _write_output(source: Path, target: Path, what: str, console: Console, err: Console) -> bool:
    """Copy a finished output into place; an error that came after the check (disk full, a folder removed
    meanwhile) is reported, not raised."""
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        err.print(f"[red]error:[/] cannot write the {what} to {escape(str(target))}: {exc.strerror or exc}")
        return False
    console.print(f"{what} written to {target}")
    return True


def scan(
    dataset: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet dataset.")],
    manifest: Annotated[Path | None, typer.Option(help="Manifest YAML (default: <dataset>.manifest.yaml).")] = None,
    policy: Annotated[str, typer.Option(help="Policy name (bundled) or YAML path.")] = "default",
    out: Annotated[Path | None, typer.Option(help="Write the redacted JSONL here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, chat, prompt_completion, preference, text.")] = "auto",
    classification: Annotated[str | None, typer.Option(help="Override the manifest classification.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Worker processes (default: all cores for big files; never more than the CPUs available).",
        ),
    ] = None,
    ner: Annotated[
        bool,
        typer.Option(
            "--ner/--no-ner",
            help="Names and places in free text via spaCy NER (default on; --no-ner only for data without free text).",
        ),
    ] = True,
) -> None:
    """Scan a dataset for personal data, health identifiers and secrets; exit 1 if it would be blocked."""
    from services.scanner.adapters.anonymizer import load_or_create_hash_key
    from services.scanner.adapters.ner import NerUnavailable
    from services.scanner.adapters.policy_files import load_policy
    from services.scanner.domain.policy import PolicyError
    from services.scanner.engine.pipeline import ScanOptions, scan_dataset
    from shared.datasets import DatasetError, ManifestError, find_manifest, load_manifest
    from shared.datasets.raw_files import open_dataset_file

    # soft_wrap: reasons stay on one line each, so they can be grepped and copied whole.
    console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    try:
        with open_dataset_file(dataset):  # '', '.', a folder, a FIFO: said now, in words, before anything else
            pass
    except DatasetError as exc:
        # An empty argument arrives as Path('.'), indistinguishable from '.': say both, not a puzzling '.'.
        shown = "the dataset path is empty or '.', a directory" if str(dataset) == "." else str(exc)
        err.print(f"[red]error:[/] {escape(shown)}; give a JSONL, CSV or Parquet file")
        raise typer.Exit(EXIT_INVALID) from None
    manifest_path = manifest or find_manifest(dataset)
    claimed: dict[str, Path] = {}
    for target, what in ((report, "report"), (out, "redacted dataset")):
        if target is None:
            continue
        problem = _output_problem(target, what, {"dataset": dataset, "manifest": manifest_path}, claimed)
        if problem:
            err.print(f"[red]error:[/] {escape(problem)}")
            raise typer.Exit(EXIT_INVALID)
        claimed[what] = target
    try:
        loaded = load_manifest(manifest_path) if manifest_path else None
        chosen = load_policy(policy)
    except (ManifestError, PolicyError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    if loaded is None:
        err.print(
            f"[yellow]warning:[/] no manifest for {dataset} (looked for {dataset.name}.manifest.yaml): "
            "assuming classification internal and no legal basis, so any personal data blocks"
        )
    settings = Settings()
    options = ScanOptions(
        policy=chosen,
        fmt=fmt,
        classification_override=classification,
        workers=workers,
        ner=ner,
        hash_key=load_or_create_hash_key(settings.path("keys", "scanner-redaction.key")),
    )
    with tempfile.TemporaryDirectory(prefix="tunegate-scan-") as tmp:
        try:
            result = scan_dataset(dataset, loaded, options, Path(tmp), manifest_path=manifest_path)
        except (DatasetError, PolicyError, NerUnavailable) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")  # the message may hold brackets ('tunegate[ner]')
            raise typer.Exit(EXIT_INVALID) from None
        _summary(console, result)
        written = True
        if report:
            written = _write_output(result.report_path, report, "report", console, err)
        if out and result.output_path is None:
            err.print(f"[yellow]no redacted dataset written to {out}: the dataset is {result.verdict}[/]")
        elif out and result.output_path is not None:
            written = _write_output(result.output_path, out, "redacted dataset", console, err) and written
    if result.verdict == "invalid" or not written:
        raise typer.Exit(EXIT_INVALID)
    if result.verdict == "blocked":
        raise typer.Exit(EXIT_BLOCKED)


def demo_dataset(
    path: Annotated[Path, typer.Argument(help="Where to write the JSONL (manifest goes beside it).")],
    count: Annotated[int | None, typer.Option(min=1, help="Number of records (default 200 chats, 48 pairs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same bytes).")] = None,
    preferences: Annotated[bool, typer.Option(
        "--preferences", help="Preference pairs on the same task (for the demo's reward model) instead.")] = False,
) -> None:
    """Write the demo dataset: order-extraction chats with planted emails, phones, a card and an AWS key; or,
    with --preferences, rated reply pairs on that task."""
    from services.scanner.entrypoints.demo_dataset import write_demo_dataset, write_demo_preferences

    write = write_demo_preferences if preferences else write_demo_dataset
    options = {name: value for name, value in (("count", count), ("seed", seed)) if value is not None}
    data, manifest = write(path, **options)
    Console(soft_wrap=True).print(f"wrote {data} and {manifest}")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
    app.command("demo-dataset")(demo_dataset)
