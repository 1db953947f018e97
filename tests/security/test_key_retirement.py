"""Retiring a service's event-signing key: a rotation keeps the old key trusted (events signed before it are still
in flight), `tunegate signing-keys retire` takes it out of trust, and from then on the bus refuses what it signs,
even in a consumer that has been running (and caching keys) all along."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from shared.bus.authentication import Authenticator, Refused
from shared.events.envelope import Envelope
from shared.security.signing import EnvelopeSigner, KeyDirectory, KeyRetirementError, RetiredKeyError

runner = CliRunner()


def scan_failed(job_id: str = "job_1") -> Envelope:
    return Envelope(
        type="dataset.scan.failed",
        producer="scanner",
        actor="scanner",
        subject=job_id,
        payload={"job_id": job_id, "reasons": ["dataset scan failed: unreadable line 7"]},
    )


@pytest.fixture
def keys_dir(tunegate_home: Path) -> Path:
    """The keys directory the CLI finds by default (Settings().keys_dir under TUNEGATE_HOME)."""
    return tunegate_home / "keys"


def rotated(keys_dir: Path) -> tuple[EnvelopeSigner, EnvelopeSigner]:
    """The scanner's (old, new) signers after one rotation."""
    directory = KeyDirectory(keys_dir)
    old = directory.signer("scanner")
    return old, directory.rotate("scanner")


def test_in_flight_events_of_the_old_key_still_verify_after_a_rotation(keys_dir: Path) -> None:
    old, new = rotated(keys_dir)
    consumer = Authenticator(KeyDirectory(keys_dir))
    consumer.check(old.sign(scan_failed("job_1")))  # signed before the rotation, still in a stream: accepted
    consumer.check(new.sign(scan_failed("job_2")))


def test_a_retired_key_is_refused_by_the_bus_with_the_reason(keys_dir: Path) -> None:
    old, new = rotated(keys_dir)
    result = runner.invoke(app, ["signing-keys", "retire", "scanner", old.key_id])
    assert result.exit_code == 0, result.output
    assert f"key {old.key_id} retired" in result.output

    with pytest.raises(Refused) as refused:
        Authenticator(KeyDirectory(keys_dir)).check(old.sign(scan_failed()))
    assert refused.value.reason.startswith("signature: ")
    assert f"key {old.key_id} of 'scanner' was retired" in refused.value.reason
    Authenticator(KeyDirectory(keys_dir)).check(new.sign(scan_failed()))  # the current key is unaffected

    assert not (keys_dir / "trust" / "scanner" / f"{old.key_id}.pub").exists()
    kept = keys_dir / "retired" / "scanner" / f"{old.key_id}.pub"
    assert kept.is_file(), "the retired public key is kept for audit"
    assert stat.S_IMODE(kept.parent.stat().st_mode) == stat.S_IMODE(kept.parent.parent.stat().st_mode) == 0o700


def test_a_long_lived_consumer_stops_accepting_a_retired_key_without_a_restart(keys_dir: Path) -> None:
    old, _ = rotated(keys_dir)
    consumer = Authenticator(KeyDirectory(keys_dir))  # a running service: its key cache is warm
    consumer.check(old.sign(scan_failed("job_1")))

    KeyDirectory(keys_dir).retire("scanner", old.key_id)  # another process: the CLI

    with pytest.raises(Refused, match="was retired"):
        consumer.check(old.sign(scan_failed("job_2")))


def test_a_cached_key_whose_trust_file_was_removed_is_no_longer_accepted(keys_dir: Path) -> None:
    """Where only trust/ is mounted (compose, Kubernetes) retirement arrives as a file that disappears."""
    old, _ = rotated(keys_dir)
    directory = KeyDirectory(keys_dir)
    assert directory.lookup("scanner", old.key_id) is not None  # cached
    os.unlink(keys_dir / "trust" / "scanner" / f"{old.key_id}.pub")
    assert directory.lookup("scanner", old.key_id) is None
    with pytest.raises(Refused, match=f"key {old.key_id} is not a known key of 'scanner'"):
        Authenticator(directory).check(old.sign(scan_failed()))


def test_the_current_key_cannot_be_retired(keys_dir: Path) -> None:
    _, new = rotated(keys_dir)
    result = runner.invoke(app, ["signing-keys", "retire", "scanner", new.key_id])
    assert result.exit_code == 2, result.output
    assert f"key {new.key_id} is the current signing key of scanner" in result.output
    assert "rotate first" in result.output
    assert (keys_dir / "trust" / "scanner" / f"{new.key_id}.pub").is_file(), "nothing was moved"
    Authenticator(KeyDirectory(keys_dir)).check(new.sign(scan_failed()))


def test_an_unknown_key_id_is_refused_with_the_known_ones(keys_dir: Path) -> None:
    old, new = rotated(keys_dir)
    result = runner.invoke(app, ["signing-keys", "retire", "scanner", "0123456789abcdef"])
    assert result.exit_code == 2, result.output
    assert "'0123456789abcdef' is not a trusted key of scanner" in result.output
    assert old.key_id in result.output and new.key_id in result.output


def test_an_unknown_service_is_refused(keys_dir: Path) -> None:
    rotated(keys_dir)
    result = runner.invoke(app, ["signing-keys", "retire", "nobody", "0123456789abcdef"])
    assert result.exit_code == 2, result.output
    assert "unknown service 'nobody'" in result.output


def test_retiring_twice_is_harmless(keys_dir: Path) -> None:
    old, _ = rotated(keys_dir)
    directory = KeyDirectory(keys_dir)
    assert directory.retire("scanner", old.key_id) is True
    assert directory.retire("scanner", old.key_id) is False
    result = runner.invoke(app, ["signing-keys", "retire", "scanner", old.key_id])
    assert result.exit_code == 0, result.output
    assert "already retired" in result.output


def test_retired_wins_over_a_copy_back_in_trust(keys_dir: Path) -> None:
    """A stale copy of trust/ (an old backup restored) must not bring a retired key back."""
    old, _ = rotated(keys_dir)
    directory = KeyDirectory(keys_dir)
    directory.retire("scanner", old.key_id)
    retired = keys_dir / "retired" / "scanner" / f"{old.key_id}.pub"
    (keys_dir / "trust" / "scanner" / f"{old.key_id}.pub").write_bytes(retired.read_bytes())
    with pytest.raises(RetiredKeyError):
        directory.lookup("scanner", old.key_id)
    assert old.key_id not in directory.public_keys("scanner")


def test_a_retired_signing_key_is_not_published_again(keys_dir: Path) -> None:
    """Restoring the old private key from a backup must not quietly re-trust it when the service starts."""
    signing = keys_dir / "signing" / "scanner.key"
    directory = KeyDirectory(keys_dir)
    directory.signer("scanner")
    old_pem = signing.read_bytes()
    old_id = directory.current_key_id("scanner")
    assert old_id is not None
    directory.rotate("scanner")
    directory.retire("scanner", old_id)
    signing.write_bytes(old_pem)
    with pytest.raises(KeyRetirementError, match="was retired"):
        directory.signer("scanner")
    assert not (keys_dir / "trust" / "scanner" / f"{old_id}.pub").exists()


def test_list_shows_current_trusted_and_retired(keys_dir: Path) -> None:
    old, new = rotated(keys_dir)
    newest = KeyDirectory(keys_dir).rotate("scanner")
    KeyDirectory(keys_dir).retire("scanner", old.key_id)
    result = runner.invoke(app, ["signing-keys", "list"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("scanner:"))
    trusted = ", ".join(sorted([new.key_id, newest.key_id]))
    assert line == f"scanner: current {newest.key_id}; trusted {trusted}; retired {old.key_id}"


def test_rotate_names_the_old_key_and_how_to_retire_it(keys_dir: Path) -> None:
    old = KeyDirectory(keys_dir).signer("scanner")
    result = runner.invoke(app, ["signing-keys", "rotate", "scanner"])
    assert result.exit_code == 0, result.output
    assert f"tunegate signing-keys retire scanner {old.key_id}" in result.output


def test_malformed_key_ids_never_become_paths(keys_dir: Path) -> None:
    rotated(keys_dir)
    directory = KeyDirectory(keys_dir)
    assert directory.lookup("scanner", "../../signing/scanner") is None
    assert directory.lookup("scanner", "ABCDEF0123456789") is None
