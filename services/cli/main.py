"""`tunegate`: one command line for every service's verbs."""

from __future__ import annotations

import typer

from services.audit import cli as audit_cli
from services.cli import demo, runtime
from services.registry import cli as registry_cli
from services.scanner.entrypoints import cli as scanner_cli
from services.trainer.entrypoints import cli as trainer_cli

app = typer.Typer(
    name="tunegate",
    help="Governed LLM fine-tuning: scan, approve, train, evaluate, register, serve, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up")(runtime.up)
app.command("down")(runtime.down)
app.command("status")(runtime.status)
audit_cli.register(app)
registry_cli.register(app)
scanner_cli.register(app)
trainer_cli.register(app)
registry_cli.jobs_app.command("watch")(trainer_cli.jobs_watch)
app.command("demo")(demo.demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
