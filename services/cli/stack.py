"""`tunegate up`, `down` and `status`: the local process supervisor."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from shared.config import Settings
from shared.stack.supervisor import MAX_REPLICAS, SERVICES, Supervisor, SupervisorError

console = Console()


def up(
    services: list[str] = typer.Option(list(SERVICES), "--service", "-s", help="Start only these services."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for each service to report ready."),
    replicas: int = typer.Option(
        1, min=1, max=MAX_REPLICAS, help="Processes per service (one consumer group each: an event goes to one)."
    ),
) -> None:
    """Start Redis (unless TUNEGATE_REDIS_URL is set) and every service in the background."""
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        console.print(f"[red]unknown service(s): {', '.join(unknown)}; known: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    supervisor = Supervisor(Settings())
    try:
        result = supervisor.up(tuple(services), timeout_s=timeout, replicas=replicas)
    except SupervisorError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(f"redis: {result['redis_url']}")
    for name, pids in result["services"].items():
        console.print(f"[green]ready[/green] {name} (pid {', '.join(map(str, pids))})")
    console.print(f"logs and pids under {supervisor.home}")
    if "registry" in result["services"]:
        from services.registry.entrypoints.principals_cli import bootstrap_after_up

        bootstrap_after_up(Settings(), console)


def down() -> None:
    """Stop exactly the processes `tunegate up` started."""
    stopped = Supervisor(Settings()).down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Liveness, consumer lag and dead-letter counts of every service, model versions past their review date,
    and open incidents (with those past their Art. 73 reporting deadline). Exit 1 when Redis is unreachable,
    or a service that `tunegate up` started is dead, not ready or cannot reach Redis."""
    settings = Settings()
    report = Supervisor(settings).status()
    if report["services"].get("registry", {}).get("alive"):
        from services.registry.entrypoints.incidents_cli import incident_status
        from services.registry.entrypoints.models_cli import review_status

        report["models"] = review_status(settings)
        report["incidents"] = incident_status(settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        raise typer.Exit(0 if report["healthy"] else 1)
    redis_info = report["redis"]
    console.print(f"redis: {redis_info.get('url', '-')} reachable={redis_info.get('reachable')}")
    table = Table("service", "pid", "alive", "ready", "replicas", "lag", "pending", "dead letters")
    for name, entry in report["services"].items():
        lag = sum(v or 0 for v in entry["lag"].values())
        pending = sum(entry["pending"].values())
        table.add_row(
            name,
            ", ".join(map(str, entry["pids"])) or "-",
            "yes" if entry["alive"] else "no",
            "yes" if entry["ready"] else "no",
            str(len(entry["replicas"])),
            str(lag),
            str(pending),
            str(entry["dead_letters"]),
        )
    console.print(table)
    streams = Table("stream", "length", "dead letters")
    for stream, info in report["streams"].items():
        streams.add_row(stream, str(info["length"]), str(info["dead_letters"]))
    console.print(streams)
    for name, entry in report["services"].items():
        for problem in entry["problems"]:
            console.print(f"[red]{name}: {problem}")
    models = report.get("models") or {}
    if models.get("checked"):
        overdue = models["overdue"]
        line = f"model versions: {models['versions']}, past their review date: {len(overdue)}"
        console.print(f"[red]{line}: " + ", ".join(v["id"] for v in overdue) if overdue else line)
    elif models:
        console.print(f"model versions: not checked ({models['detail']})")
    incidents = report.get("incidents") or {}
    if incidents.get("checked"):
        late = incidents["overdue"]
        line = f"open incidents: {incidents['open']}, past their Art. 73 reporting deadline: {len(late)}"
        console.print(f"[red]{line}: " + ", ".join(i["id"] for i in late) if late else line)
    elif incidents:
        console.print(f"incidents: not checked ({incidents['detail']})")
    if not report["healthy"]:
        console.print("[red]unhealthy: Redis unreachable, or a started service is down or cannot reach Redis")
        raise typer.Exit(1)
