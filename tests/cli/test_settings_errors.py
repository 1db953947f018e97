"""An invalid TUNEGATE_* value is refused where the settings are read, named as the variable to fix, with exit
status 2: before this, a malformed registry or Redis URL, or a home that is a file or lies in /proc, reached
the verb and failed there as an InvalidURL, ValueError, NotADirectoryError or PermissionError (exit 70), and
`tunegate scan` only after the scan had started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.cli.crash import USAGE_EXIT, report
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def tunegate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command's entry point in a fresh interpreter, with only these TUNEGATE_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_", "OTEL_"))}
    clean.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = ['tunegate', *{list(args)!r}]; "
         "from services.cli.main import main; main()"],
        env=clean, capture_output=True, text=True, timeout=120,
    )


def refused(variable: str, field: str, value: object, capsys: pytest.CaptureFixture[str]) -> str:
    """Settings(field=value) is refused, and the CLI's report names `variable`; the one-line message."""
    with pytest.raises(ValidationError) as caught:
        Settings(**{field: value})
    assert report(caught.value) == USAGE_EXIT
    err = capsys.readouterr().err
    assert err.startswith(f"tunegate: invalid setting in the environment: {variable}: "), err
    assert err.count("\n") == 1 and "Value error," not in err
    return err


# ---------------------------------------------------------------- the reported cases, through the command


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-folder"
    path.write_text("x\n")
    return path


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("TUNEGATE_REGISTRY_URL", "http://[::1", ("jobs", "list")),
        ("TUNEGATE_REDIS_URL", "bogus://x", ("status",)),
        ("TUNEGATE_HOME", "{file}", ("audit", "verify")),
        ("TUNEGATE_HOME", "{file}", ("scan", "{dataset}", "--no-ner")),
        ("TUNEGATE_HOME", "/proc/self", ("audit", "tail")),
    ],
)
def test_the_command_names_the_setting_and_exits_2(
    variable: str, value: str, args: tuple[str, ...], a_file: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    env = {
        "TUNEGATE_HOME": str(tmp_path / "home"),
        "TUNEGATE_TOKEN": "tg_x",  # so `jobs list` reaches the registry URL instead of stopping for a token
        "TUNEGATE_DATA_ROOTS": str(tmp_path),
        variable: value.format(file=a_file),
    }
    shown = tunegate(env, *(arg.format(dataset=dataset) for arg in args))
    assert shown.returncode == USAGE_EXIT, shown.stderr
    assert f"invalid setting in the environment: {variable}: " in shown.stderr
    assert "Traceback" not in shown.stderr and "failed:" not in shown.stderr


# ---------------------------------------------------------------- Redis URLs


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1",  # tests/bus/test_reclaim_idle.py
        "redis://127.0.0.1:6379/0",  # shared/stack/redis_server.py
        "redis://admin:pw-_x@127.0.0.1:6390/0",  # redis_acl.url_for: token_urlsafe passwords
        "rediss://cache.example:6380/2?ssl_cert_reqs=none",
        "redis://[::1]:6379",
        "unix:///run/redis/redis.sock?db=3",
    ],
)
def test_redis_urls_that_redis_py_accepts_are_kept(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


def test_an_empty_url_still_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # TUNEGATE_REDIS_URL= has always meant "start the embedded Redis" (tests/audit/test_audit_service.py).
    monkeypatch.setenv("TUNEGATE_REDIS_URL", "")
    monkeypatch.setenv("TUNEGATE_REGISTRY_URL", " ")
    settings = Settings()
    assert settings.redis_url is None and settings.registry_url is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("bogus://x", "use redis://"),
        ("REDIS://h:6379", "use redis://"),  # redis-py compares the scheme case-sensitively
        ("127.0.0.1:6379", "use redis://"),
        ("redis://h:99999/0", "port"),
        ("redis://h:abc/0", "port"),
        ("redis://[::1/0", "does not parse"),
        ("redis:///0", "no host"),
        ("redis://h:6379/zero", "database number"),
        ("unix://", "socket"),
    ],
)
def test_malformed_redis_urls_are_refused(url: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert said in refused("TUNEGATE_REDIS_URL", "redis_url", url, capsys)


def test_a_refused_redis_url_never_shows_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    # An unencoded '#' ends the authority: urllib then reads part of the password as the port.
    err = refused("TUNEGATE_REDIS_URL", "redis_url", "redis://operator:s3cr#et@redis:6379/0", capsys)
    assert "s3cr" not in err and "percent-encode" in err
    with pytest.raises(ValidationError) as caught:
        Settings(redis_url="redis://operator:s3cret@redis:notaport/0")
    assert "s3cret" not in str(caught.value), "a service logging the error must not log the password"


# ---------------------------------------------------------------- the registry URL


@pytest.mark.parametrize(
    "url", ["http://registry:8080", "https://tunegate.example/api/", "http://[::1]:8080", "http://127.0.0.1"]
)
def test_registry_urls_are_kept(url: str) -> None:
    assert Settings(registry_url=url).registry_url == url


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://h:99999", "port"),
        ("http://h:0", "port"),
        ("http://h:port", "port"),
        ("registry:8080", "http://"),
        ("ftp://h", "http://"),
        ("http://", "no host"),
        ("http://u:p@h", "token"),
        ("http://h/?x=1", "query"),
    ],
)
def test_malformed_registry_urls_are_refused(url: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert said in refused("TUNEGATE_REGISTRY_URL", "registry_url", url, capsys)


# ---------------------------------------------------------------- folders


def test_a_home_to_be_created_is_kept(tmp_path: Path) -> None:
    assert Settings(home=tmp_path / "new" / "deeper").home == tmp_path / "new" / "deeper"


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_home_that_is_or_lies_in_a_file_is_refused(
    below: str, a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused("TUNEGATE_HOME", "home", a_file / below if below else a_file, capsys)
    assert f"{a_file} is a file, not a folder" in err


@pytest.mark.parametrize("system", ["/proc/self", "/sys", "/dev/null", "/dev/fresh"])
def test_a_home_in_a_kernel_filesystem_is_refused(system: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "kernel" in refused("TUNEGATE_HOME", "home", Path(system), capsys)


def test_a_home_reached_through_a_link_into_proc_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "link").symlink_to("/proc/self")
    assert "/proc" in refused("TUNEGATE_HOME", "home", tmp_path / "link", capsys)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm here")
def test_a_home_in_dev_shm_is_kept() -> None:
    # /dev/shm is an ordinary tmpfs, a fair place for a throwaway home (unlike devtmpfs, procfs and sysfs).
    assert Settings(home=Path("/dev/shm/tunegate-home")).home == Path("/dev/shm/tunegate-home")


def test_an_aliased_folder_setting_is_named_by_its_own_variable(
    a_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TUNEGATE_KEYS_DIR", str(a_file))
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert report(caught.value) == USAGE_EXIT
    err = capsys.readouterr().err  # not TUNEGATE_TUNEGATE_KEYS_DIR
    assert err.startswith("tunegate: invalid setting in the environment: TUNEGATE_KEYS_DIR: "), err


def test_a_data_root_that_is_a_file_is_refused(a_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a file, not a folder" in refused("TUNEGATE_DATA_ROOTS", "data_roots", [a_file], capsys)
