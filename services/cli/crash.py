"""What the `tunegate` command says when a verb fails in a way no verb anticipated: one line, never a
traceback (TUNEGATE_TRACEBACK=1 shows it), and exit status 70, apart from the 1 that verification verbs use
for "verified: no" and the 2 of a usage error, so a script can tell a crash from a verdict.

An invalid setting in the environment (TUNEGATE_MAX_DELIVERIES=-1, TUNEGATE_REGISTRY_PORT=99999) reached
every verb as a pydantic traceback from the settings class; it is named here as the variable to fix, by its own
name when the field reads another one (TUNEGATE_KEYS_DIR), with the check's own words (no "Value error, ")."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

CRASH_EXIT = 70  # EX_SOFTWARE (sysexits.h)
USAGE_EXIT = 2


def _settings_class(title: str) -> type[Any] | None:
    """The pydantic-settings class named `title`, or None if it is not one."""
    from pydantic_settings import BaseSettings

    pending: list[type[Any]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title and cls is not BaseSettings:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def _variable(settings: type[Any], loc: tuple[int | str, ...]) -> str:
    """The environment variable an error at `loc` is about: prefix + field name, or, for a field read under a
    validation alias, the alias itself (which pydantic reports as the loc); an item of a list field follows in
    brackets (TUNEGATE_DATA_ROOTS[1])."""
    if not loc:
        return str(settings.model_config.get("env_prefix", "")) + "*"
    first, rest = str(loc[0]), "".join(f"[{part}]" for part in loc[1:])
    if first in settings.model_fields:
        return f"{settings.model_config.get('env_prefix', '')}{first}".upper() + rest
    return first.upper() + rest


def _problem(error: Any) -> str:
    """A validator's own message without pydantic's "Value error, " in front; pydantic's own otherwise."""
    raised = error.get("ctx", {}).get("error")
    return str(raised) if error["type"] == "value_error" and isinstance(raised, ValueError) else str(error["msg"])


def report(exc: BaseException) -> int:
    """Print what went wrong to stderr; the exit status."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and (settings := _settings_class(exc.title)) is not None:
        problems = [f"{_variable(settings, tuple(error['loc']))}: {_problem(error)}" for error in exc.errors()]
        print(f"tunegate: invalid setting in the environment: {'; '.join(problems)}", file=sys.stderr)
        return USAGE_EXIT
    shown = os.environ.get("TUNEGATE_TRACEBACK", "") not in ("", "0")
    if shown:
        traceback.print_exception(exc)
    message = (str(exc).strip().splitlines() or [""])[0][:500]
    hint = "" if shown else " (TUNEGATE_TRACEBACK=1 shows where)"
    print(f"tunegate: failed: {type(exc).__name__}: {message}{hint}", file=sys.stderr)
    return CRASH_EXIT
