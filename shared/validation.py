"""The one way a pydantic validation failure is told to a person: 'where: what is wrong', one per problem.

Every boundary (job files, policies, request bodies, CLI flags, proof documents, event payloads) reports
through this module, so a user sees the same shape of message whichever door they came in by."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

MAX_INPUT_REPR = 80


class HasErrors(Protocol):
    """pydantic's ValidationError and FastAPI's RequestValidationError both look like this."""

    def errors(self) -> Sequence[Any]: ...


def dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_INPUT_REPR else text[: MAX_INPUT_REPR - 1] + "…"


def validation_problems(
    exc: HasErrors,
    *,
    root: str = "(top level)",
    prefix: str = "",
    location: Callable[[Sequence[Any]], str] = dotted,
    known_fields: Iterable[str] | None = None,
    show_input: bool = False,
) -> list[str]:
    """One line per problem: '<prefix><location>: <message>'.

    `root` stands for the whole document when the error has no location; `known_fields`, when given, turns an
    unknown key into 'unknown key (known keys: ...)'; `show_input` appends the offending value, shortened
    so a huge input cannot flood the message."""
    known = ", ".join(sorted(known_fields)) if known_fields is not None else None
    problems = []
    for err in exc.errors():
        where = location(tuple(err.get("loc", ())))
        label = f"{prefix}{where}" if where else root
        if known is not None and err.get("type") == "extra_forbidden":
            message = f"unknown key (known keys: {known})"
        else:
            message = str(err.get("msg", "invalid"))
            if show_input and "input" in err:
                message += f" (got {_short_repr(err['input'])})"
        problems.append(f"{label}: {message}")
    return problems


def describe_validation_error(exc: HasErrors, **options: Any) -> str:
    """The problems of `validation_problems` joined with '; ' for a one-line message."""
    return "; ".join(validation_problems(exc, **options))
