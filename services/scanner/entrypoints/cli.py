"""`tunegate scan`: the data owner's pre-flight. Know before paying which examples would be rejected and why.

Exit status: 0 clean or redacted, 1 blocked, 2 invalid input (bad lines, unreadable file, bad policy)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def scan(
    dataset: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet dataset.")],
    manifest: Annotated[Path | None, typer.Option(help="Manifest YAML (default: <dataset>.manifest.yaml).")] = None,
    policy: Annotated[str, typer.Option(help="Policy name (bundled) or YAML path.")] = "default",
    out: Annotated[Path | None, typer.Option(help="Write the redacted JSONL here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, chat, prompt_completion, preference, text.")] = "auto",
    classification: Annotated[str | None, typer.Option(help="Override the manifest classification.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: all cores for big files).")
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

    # soft_wrap: reasons stay on one line each, so they can be grepped and copied whole.
    console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    manifest_path = manifest or find_manifest(dataset)
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
        if report:
            shutil.copyfile(result.report_path, report)
            console.print(f"report written to {report}")
        if out:
            if result.output_path is not None:
                shutil.copyfile(result.output_path, out)
                console.print(f"redacted dataset written to {out}")
            else:
                err.print(f"[yellow]no redacted dataset written to {out}: the dataset is {result.verdict}[/]")
    if result.verdict == "invalid":
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
