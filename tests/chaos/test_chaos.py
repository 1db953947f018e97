"""The short seeded fault-injection run (tests/chaos/driver.py), part of `make test` and so of CI: on PostgreSQL
behind a proxy that cuts it off when TUNEGATE_TEST_DATABASE_URL names one (.ci/run sets it), else on SQLite (the
other database is `make chaos CHAOS_DATABASE_URL=...` or `python -m tests.chaos.driver`). One run, not one per
database: it is the suite's second-longest test. The driver runs as its own process: it mounts, kills and
restarts things, and sets the environment its services inherit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.stack.supervisor import SERVICES
from tests.support import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# pytest-timeout's 600 s default would kill the test, not the driver; the driver gets its own limit below.
@pytest.mark.timeout(1800)
def test_the_demo_job_survives_killed_services_a_redis_restart_a_full_disk_and_a_database_outage(
    tmp_path: Path,
) -> None:
    args = [sys.executable, "-m", "tests.chaos.driver", "--seed", "7", "--report", str(tmp_path / "report.json")]
    url = os.environ.get("TUNEGATE_TEST_DATABASE_URL")
    if url:
        args += ["--database-url", url]
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEGATE_HOME", "TUNEGATE_REDIS_URL")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(1500)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the driver stops its services and unmounts its tmpfs on SIGTERM
            proc.wait(120)
    transcript = log.read_text()[-8000:]
    report = json.loads((tmp_path / "report.json").read_text())

    assert report["failed_checks"] == [], transcript
    assert report["database"] == ("postgresql" if url else "sqlite")
    assert proc.returncode == 0, transcript
    # Every service was killed (the gateway and the ledger once more while answers flowed), Redis restarted,
    # the database cut off; the disk filled where a tmpfs could be mounted.
    assert set(report["killed"]) == set(SERVICES) and report["faults"]["SIGKILL service"] == len(SERVICES) + 2
    assert report["faults"]["Redis restart (AOF)"] == 1 and report["faults"]["database unreachable"] == 1
    assert report["faults"].get("disk full", 0) == 1 or "disk_full" in report["skipped_faults"]
    # What the checks rest on is not empty: events and ledger entries match one for one (bar what was published
    # while the checks read the streams and the ledger), answers were served.
    assert report["ledger_entries"] > 0
    assert report["events"] - report["published_after_settling"] <= report["ledger_entries"] <= report["events"]
    assert report["lost"] == [] and report["duplicated"] == [] and report["unpublished_in_ledger"] == []
    assert report["answered_2xx"] > 0 and report["answered_2xx_missing"] == []
    # The bad entries injected on purpose, and nothing else, are in the dead letters.
    assert report["dead_letters"] > 0 and report["unexpected_dead_letters"] == []
    assert report["audit_verified"]
    [job] = report["jobs"]
    assert job["state"] == "evaluated", job
