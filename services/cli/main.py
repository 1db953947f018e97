"""`tunegate`: one command line for every service's verbs."""

from __future__ import annotations

import typer

from services.cli import runtime

app = typer.Typer(
    name="tunegate",
    help="Governed LLM fine-tuning: scan, approve, train, evaluate, register, serve, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up")(runtime.up)
app.command("down")(runtime.down)
app.command("status")(runtime.status)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
