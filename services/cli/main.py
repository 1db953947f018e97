"""`tunegate`: one command line for every service's verbs."""

from __future__ import annotations

import typer

from services.audit import cli as audit_cli
from services.cli import demo, runtime
from services.cli.keys import keys_app
from services.cli.secrets import secrets_app
from services.registry.entrypoints import cli as registry_cli
from services.scanner import cli as scanner_cli
from services.trainer import cli as trainer_cli

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
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")


def main() -> None:
    from shared.storage.private import restrict_umask

    restrict_umask()  # tokens, keys, pid files, logs and the services `up` starts: owner-only
    app()


if __name__ == "__main__":
    main()
