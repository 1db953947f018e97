"""Every service as 2 replicas in one consumer group (`tunegate up --replicas 2`), real processes: a job runs
from request to its evaluation with no event handled twice, exactly one trainer and one evaluator
doing the work (their leases: one acquisition each), the ledger holding every event once; and two gateways,
called alternately as a round-robin load balancer would, enforce one key's budget as one (it lives in Redis).

How "handled twice" would show: a handler's effects, its inbox mark and the events it emits commit together,
so a second handling by the other replica would emit its events a second time (new event ids, same cause).
The streams therefore must hold exactly one event per (producer, type, causation) where one handling emits
one, and the job's history must pass each state once."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from rich.console import Console

from bench.support.openai_upstream import MODEL, serve_upstream
from services.cli.demo import EXAMPLES, FINAL_STATES, Demo
from shared.bus.groups import group_name
from shared.config import Settings
from shared.events.streams import ALL_STREAMS
from shared.models.bases import BaseModelInfo
from shared.stack.lease import fence_key
from shared.stack.supervisor import Supervisor
from tests.support import read_stream, wait_for
from tests.trainer.test_trainer_service import share_built_tiny

# 12 service processes and a job on 2 shared cores: minutes, like the end-to-end demo.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

SERVICES = ("audit", "registry", "scanner", "trainer", "evaluator", "gateway")
ONCE_PER_JOB = (
    "job.accepted", "dataset.scan.requested", "dataset.scanned", "training.requested", "training.started",
    "training.completed", "evaluation.started", "evaluation.completed",
)  # fmt: skip
ROUTE = "lb-upstream"
TENANT = "acme"


def small_job(target: Path) -> Path:
    """The demo's minimal-risk job with a few training steps: the point is who handles what, not quality."""
    spec = yaml.safe_load((EXAMPLES / "demo_job.yaml").read_text())
    spec["hyperparameters"]["max_steps"] = 6
    # One suite, for time: what is tested is the evaluator's lease, not the gate. The registry records a run
    # of fewer suites than the evaluator's set without a verdict, so the job returns to `trained` after it.
    spec["evaluation"] = {"suites": ["task_quality"]}
    target.write_text(yaml.safe_dump(spec))
    return target


def gateway_urls(home: Path) -> list[str]:
    return sorted({p.read_text().strip() for p in (home / "run").glob("gateway-*.url")})


def chat(url: str, secret: str, n: int) -> httpx.Response:
    body = {"model": ROUTE, "messages": [{"role": "user", "content": f"Where is order {n}?"}], "max_tokens": 4}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"},
                      timeout=60)


def test_two_replicas_of_every_service_handle_a_job_once_and_share_one_budget(
    tmp_path: Path, tunegate_home: Path, monkeypatch: pytest.MonkeyPatch, tiny_base: BaseModelInfo
) -> None:
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    # Twelve processes on one database: SQLite files, or one PostgreSQL schema when TUNEGATE_TEST_DATABASE_URL
    # is set (tunegate_home; `tunegate up` passes the environment on).
    home = tunegate_home
    share_built_tiny(home, tiny_base)
    console = Console(record=True, width=160)
    with serve_upstream(in_thread=True) as upstream:
        routes = tmp_path / "upstreams.yaml"
        routes.write_text(json.dumps({"upstreams": [
            {"name": ROUTE, "base_url": upstream, "model": MODEL, "tenants": [TENANT]}]}))
        monkeypatch.setenv("TUNEGATE_GATEWAY_UPSTREAMS_FILE", str(routes))
        demo = Demo(home, console)
        demo.run("up", "--replicas", "2")
        try:
            run_the_job_and_check(demo, home)
            check_the_gateways_share_budgets(demo, home)
        except BaseException:
            print(console.export_text()[-6000:])
            raise
        finally:
            demo.run("down", check=False)
    assert not list((home / "run").glob("*.pid.json")), "down stops every replica"


def run_the_job_and_check(demo: Demo, home: Path) -> None:
    reports: list[dict[str, Any]] = []

    def healthy() -> bool:
        reports.append(json.loads(demo.run("status", "--json", capture=True, check=False).stdout))
        return bool(reports[-1]["healthy"])

    try:
        wait_for(healthy, 60, "status healthy", interval=1.0)
    except AssertionError:
        raise AssertionError({n: e["problems"] for n, e in reports[-1]["services"].items()}) from None
    status = reports[-1]
    for name in SERVICES:
        entry = status["services"][name]
        assert len(entry["pids"]) == 2 and len(entry["replicas"]) == 2, (name, entry)
        assert entry["alive"] and entry["ready"] and not entry["problems"], (name, entry)
    trainer_pids = set(status["services"]["trainer"]["pids"])
    evaluator_pids = set(status["services"]["evaluator"]["pids"])

    dataset = home / "demo" / "orders.jsonl"
    demo.run("demo-dataset", str(dataset))
    demo.run("principals", "create", "req", "--role", "requester")
    demo.run("principals", "create", "appr", "--role", "approver")
    submitted = demo.json("submit", str(small_job(home / "job.yaml")), "--as", "req", "--dataset", str(dataset),
                          "--json")
    job_id = submitted["job_id"]
    demo.wait_state(job_id, {"awaiting_approval"}, timeout_s=300)
    demo.run("approve", job_id, "--as", "appr", "--comment", "one approval: minimal risk")
    evaluated = ["requested", "accepted", "scanning", "awaiting_approval", "approved", "training", "trained",
                 "evaluating", "trained"]

    def finished() -> dict[str, Any] | None:
        job = demo.json("jobs", "show", job_id, "--json")
        done = len(job["history"]) >= len(evaluated) or job["state"] in FINAL_STATES
        return job if done else None

    job = wait_for(finished, 1200, "the evaluation recorded", interval=3.0)
    # Each step once: a second handling of any of them would have moved the job (or tried to) again.
    states = [h["to_state"] for h in job["history"]]
    assert states == evaluated, states

    settings = Settings(home=home)
    client = redis.Redis.from_url(Supervisor(settings).redis_url())
    wait_for(lambda: all(_pending(client, name) == 0 for name in SERVICES), 60, "every group drained")
    events = [e for stream in ALL_STREAMS for e in read_stream(client, stream.value)]
    mine = [e for e in events if e.subject == job_id or e.payload.get("job_id") == job_id]
    counts = Counter(e.type for e in mine)
    assert {t: counts[t] for t in ONCE_PER_JOB} == dict.fromkeys(ONCE_PER_JOB, 1), counts
    # No handling emitted twice: one event per (producer, type, cause) for everything but progress reports
    # and the registry's state changes (one job.requested causes three).
    per_cause = Counter((e.producer, e.type, e.causation_id) for e in events
                        if e.causation_id and e.type not in ("job.state_changed", "training.progress",
                                                             "training.checkpointed"))
    twice = {key: n for key, n in per_cause.items() if n > 1}
    assert not twice, twice

    # Exactly one trainer and one evaluator ran it: one lease acquisition each (fencing token 1), by one of
    # the two processes each.
    (started,) = [e for e in mine if e.type == "training.started"]
    assert started.payload["fencing_token"] == 1
    assert int(started.payload["worker_id"].split(":")[1]) in trainer_pids
    assert int(client.get(fence_key(job_id)) or 0) == 1
    (evaluated,) = [e for e in mine if e.type == "evaluation.started"]
    assert int(evaluated.payload["worker_id"].split(":")[1]) in evaluator_pids

    # Both replicas of every service read from its one consumer group.
    for name in SERVICES:
        consumers = {c["name"].decode() for stream in _streams(name) for c in _consumers(client, stream, name)}
        assert len(consumers) == 2, (name, consumers)

    # The ledger: every event once, the chain verifying (two audit processes appended to it).
    wait_for(lambda: _ledger_size(settings) >= len(events), 60, "every event in the ledger")
    ids = _ledger_event_ids(settings)
    assert len(ids) == len(set(ids)) and set(ids) >= {e.event_id for e in events}
    demo.run("audit", "verify")
    client.close()


def check_the_gateways_share_budgets(demo: Demo, home: Path) -> None:
    urls = gateway_urls(home)
    assert len(urls) == 2, urls
    key = demo.json("keys", "create", "--tenant", TENANT, "--model", ROUTE, "--name", "lb", "--rpm", "4", "--json")
    secret = key["secret"]
    for url in urls:  # each replica hears of the key (whichever handled apikey.created, both follow it)
        wait_for(lambda u=url: httpx.get(f"{u}/v1/models", headers={"authorization": f"Bearer {secret}"},
                                         timeout=10).status_code == 200, 60, f"the key at {url}")
    # Round robin over the two, as a load balancer would: the 5th request in the minute is over the key's 4
    # whichever replica gets it.
    answers = [chat(urls[n % 2], secret, n) for n in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429], [a.text[:200] for a in answers]
    event_ids = [a.headers["x-tunegate-audit-event"] for a in answers[:4]]
    settings = Settings(home=home)
    wait_for(lambda: set(event_ids) <= set(_ledger_event_ids(settings)), 60, "the answers in the ledger")


def _streams(name: str) -> list[str]:
    from shared.roster import service

    return service(name).streams()


def _consumers(client: redis.Redis, stream: str, name: str) -> list[dict[str, Any]]:
    try:
        return list(client.xinfo_consumers(stream, group_name(name)))
    except redis.ResponseError:
        return []


def _pending(client: redis.Redis, name: str) -> int:
    total = 0
    for stream in _streams(name):
        with contextlib.suppress(redis.ResponseError):  # no group yet on a stream nothing was written to
            total += int(client.xpending(stream, group_name(name))["pending"])
    return total


def _ledger_event_ids(settings: Settings) -> list[str]:
    from services.audit.application import ledger_event_ids

    return ledger_event_ids(settings)


def _ledger_size(settings: Settings) -> int:
    from services.audit.application import open_store

    store = open_store(settings, create=False)
    try:
        with store.read() as conn:
            return store.count_entries(conn)
    finally:
        store.db.dispose()
