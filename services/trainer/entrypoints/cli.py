"""`tunegate models bases` (mounted in the registry's `models` group, services/registry/entrypoints/models_cli.py)
and `tunegate jobs watch ID` (services/cli/main.py mounts `jobs_watch` under `jobs`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shared.config import Settings

# Redis, the bus wire format (FastStream) and the base-model catalogue are imported by the commands that
# use them, so that `tunegate` and its other verbs start at once.
if TYPE_CHECKING:
    import redis

    from shared.events.envelope import Envelope

TERMINAL = {"training.completed", "training.failed", "training.cancelled"}


def models_bases(
    local: Annotated[list[Path] | None, typer.Option("--local", help="Also list this checkpoint directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the base models: built-in `tiny`, bundled SmolLM2, and local checkpoint directories."""
    from shared.models.bases import BaseModelError, list_bases

    settings = Settings()
    try:
        bases = list_bases(settings, list(local or []))
    except BaseModelError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([b.model_dump() for b in bases], indent=2))
        return
    table = Table(title="Base models")
    for column in ("name", "licence", "status", "sha256"):
        table.add_column(column)
    for base in bases:
        table.add_row(base.name, base.licence, base.status, (base.sha256 or "")[:16])
    Console().print(table)


def job_events(client: redis.Redis, job_id: str, block_ms: int = 1000) -> Iterator[Envelope | None]:
    """Training events for one job, oldest first, then live; yields None when a read times out so the
    caller can keep its display responsive. XREAD without a group: watching never takes work from workers."""
    from shared.bus.wire import body_of
    from shared.events.envelope import Envelope, EnvelopeError
    from shared.events.streams import Stream

    last = b"0-0"
    stream = Stream.TRAINING.value
    while True:
        reply = client.xread({stream: last}, count=500, block=block_ms)
        if not reply:
            yield None
            continue
        for _name, entries in reply:
            for entry_id, fields in entries:
                last = entry_id
                try:
                    envelope = Envelope.from_wire(body_of(fields))
                except EnvelopeError:
                    continue
                if envelope.subject == job_id:
                    yield envelope


def _describe(envelope: Envelope) -> str:
    data: Any = envelope.data
    if envelope.type == "training.completed":
        extra = f", epsilon {data.epsilon:.3g}" if data.epsilon is not None else ""
        return f"[green]completed[/green]: artefact {data.artifact.uri}{extra}"
    if envelope.type == "training.failed":
        return f"[red]failed[/red]: {data.reason}"
    return f"[yellow]cancelled[/yellow] at step {data.at_step}: {data.reason}"


def jobs_watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0 = never).")] = 0.0,
) -> None:
    """Follow a training job live: progress bar with loss and ETA until it completes, fails or is cancelled."""
    import redis
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    settings = Settings()
    try:
        client = redis.Redis.from_url(settings.resolved_redis_url("operator"))
    except RuntimeError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console = Console()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{job_id}: waiting", total=None, loss="-", speed="")
        for envelope in job_events(client, job_id):
            if deadline is not None and time.monotonic() > deadline:
                console.print(f"gave up after {timeout:g} s without a final event")
                raise typer.Exit(1)
            if envelope is None:
                continue
            data: Any = envelope.data
            if envelope.type == "training.started":
                bar.update(task, description=f"{job_id}: training (worker {data.worker_id})",
                           total=data.total_steps, completed=data.resumed_from_step)
            elif envelope.type == "training.progress":
                speed = f"{data.tokens_per_s:,.0f} tok/s" if data.tokens_per_s else ""
                loss = f"{data.loss:.4f}" if data.loss is not None else "-"
                bar.update(task, total=data.total_steps, completed=data.step, loss=loss, speed=speed)
            elif envelope.type == "training.checkpointed":
                bar.console.print(f"checkpoint at step {data.step}: {data.checkpoint.uri}")
            elif envelope.type in TERMINAL:
                bar.console.print(_describe(envelope))
                if envelope.type != "training.completed":
                    raise typer.Exit(1)
                return


def register(app: typer.Typer) -> None:
    """Nothing of its own at the top level: `models bases` is mounted in the registry's `models` group
    (services/registry/entrypoints/models_cli.py), `jobs watch` under `jobs` by services/cli/main.py."""
    del app
