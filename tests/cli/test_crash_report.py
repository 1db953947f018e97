"""The installed `tunegate` reports an unforeseen failure in one line with exit status 70 (not the 1 that
verification verbs use for a failed verification), and an invalid environment setting as the variable to
fix; pyproject points the command at main(), which also sets the owner-only umask."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.cli.crash import CRASH_EXIT, USAGE_EXIT, report

ROOT = Path(__file__).resolve().parents[2]


def test_an_invalid_setting_names_the_environment_variable(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from shared.config import Settings

    monkeypatch.setenv("TUNEGATE_MAX_DELIVERIES", "-1")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert report(caught.value) == USAGE_EXIT
    err = capsys.readouterr().err
    assert err.startswith("tunegate: invalid setting in the environment: TUNEGATE_MAX_DELIVERIES: ")
    assert "Traceback" not in err and "errors.pydantic.dev" not in err


def test_anything_else_is_one_line_and_exit_70(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEGATE_TRACEBACK", raising=False)
    assert report(NotADirectoryError(20, "Not a directory", "/etc/passwd/db")) == CRASH_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NotADirectoryError" in err and "TUNEGATE_TRACEBACK=1" in err
    monkeypatch.setenv("TUNEGATE_TRACEBACK", "1")
    try:
        raise KeyError("boom")
    except KeyError as exc:
        assert report(exc) == CRASH_EXIT
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_the_installed_command_runs_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tunegate"] == "services.cli.main:main"
    shown = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['tunegate', 'jobs', 'list']; "
         "from services.cli.main import main; main()"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TUNEGATE_REGISTRY_PORT": "99999"},
        capture_output=True, text=True, timeout=120,
    )
    assert shown.returncode == USAGE_EXIT, shown.stderr
    assert "TUNEGATE_REGISTRY_PORT" in shown.stderr and "Traceback" not in shown.stderr
