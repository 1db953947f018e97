"""Start-up time of the `tunegate` command line: wall time of everyday verbs against a bare interpreter.

    .venv/bin/python bench/cli_startup.py [--runs 7] [--imports 12]

Each command runs as its own process (`python -m services.cli.main ...`). Most run in a fresh empty
TUNEGATE_HOME, so that no running stack is found: `jobs list` and `audit tail` must then fail at once with
their own message (exit 1 and 2), which is what an operator sees before `tunegate up`; `audit tail` also
runs against a small real ledger, written once before timing through the audit service's own append. The
baseline is `python -c pass` on the same interpreter, measured in the same run and interleaved with the
commands, so load from other processes hits both. Prints the median wall time of each command and its ratio
to the baseline, then the modules that cost most to import for `tunegate --help` (`python -X importtime`,
cumulative). CPU seconds (user + system) are printed beside the wall times: on a shared machine they move
less with other load.
Target: every command well under a second on 2 cores."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
CLI = ("-m", "services.cli.main")

LEDGER_ENTRIES = 200


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # after `tunegate`
    exit_code: int  # the status that proves the command did what it should
    home: Literal["empty", "ledger"] = "empty"


COMMANDS: dict[str, Case] = {
    "tunegate --help": Case(("--help",), 0),
    "tunegate jobs list --help": Case(("jobs", "list", "--help"), 0),
    "tunegate jobs list (no stack)": Case(("jobs", "list"), 1),
    "tunegate audit tail --help": Case(("audit", "tail", "--help"), 0),
    "tunegate audit tail (no ledger)": Case(("audit", "tail"), 2),
    f"tunegate audit tail ({LEDGER_ENTRIES} entries)": Case(("audit", "tail"), 0, home="ledger"),
}

SEED_LEDGER = f"""
from services.audit.application import open_ledger
from shared.config import Settings
from shared.events.envelope import Envelope

ledger = open_ledger(Settings())
ledger.append([
    Envelope(type="job.state_changed", producer="registry", actor="bench@example.com", subject=f"job_{{i:06d}}",
             payload={{"job_id": f"job_{{i:06d}}", "from_state": "requested", "to_state": "scanning"}})
    for i in range({LEDGER_ENTRIES})
])
ledger.store.engine.dispose()
"""


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str], env: dict[str, str], expected: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `argv`."""
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    if proc.returncode != expected:
        raise SystemExit(
            f"`{' '.join(argv[1:])}` exited {proc.returncode}, expected {expected}:\n{proc.stdout}{proc.stderr}"
        )
    return elapsed, cpu


def top_imports(env: dict[str, str], count: int) -> list[tuple[str, float]]:
    """Top-level imports of `tunegate --help` by cumulative seconds (nested imports are folded in)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *CLI, "--help"], env=env, capture_output=True, text=True, check=True
    )
    costs: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        if not name.startswith(" ") or name.startswith("  "):  # one space: imported by __main__ itself
            continue
        costs.append((name.strip(), int(cumulative_us) / 1e6))
    return sorted(costs, key=lambda item: item[1], reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per command (after one warm-up).")
    parser.add_argument("--imports", type=int, default=12, help="How many top imports to list (0: none).")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="tunegate-bench-cli-") as tmp:
        unwanted = {"TUNEGATE_REGISTRY_URL", "TUNEGATE_REDIS_URL", "TUNEGATE_DATABASE_URL", "PYTHONDONTWRITEBYTECODE"}
        base_env = {k: v for k, v in os.environ.items() if k not in unwanted}
        envs = {
            home: dict(base_env, TUNEGATE_HOME=str(Path(tmp) / home), PYTHONPATH=str(REPO))
            for home in ("empty", "ledger")
        }
        subprocess.run([sys.executable, "-c", SEED_LEDGER], env=envs["ledger"], check=True)
        env = envs["empty"]
        baseline_argv = [sys.executable, "-c", "pass"]
        labels = ["python -c pass", *COMMANDS]
        wall: dict[str, list[float]] = {label: [] for label in labels}
        cpu: dict[str, list[float]] = {label: [] for label in labels}
        for round_no in range(args.runs + 1):  # round 0 warms the page cache and the bytecode cache
            measured = [("python -c pass", baseline_argv, env, 0)]
            measured += [
                (label, [sys.executable, *CLI, *case.args], envs[case.home], case.exit_code)
                for label, case in COMMANDS.items()
            ]
            for label, argv, run_env, code in measured:
                elapsed, used = timed_run(argv, run_env, code)
                if round_no:
                    wall[label].append(elapsed)
                    cpu[label].append(used)

        baseline = statistics.median(wall["python -c pass"])
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"cli start-up, median of {args.runs} runs on {os.cpu_count()} cores, load {load} ({sys.executable})")
        print(f"  {'command':36} {'wall s':>7} {'min s':>7} {'cpu s':>7} {'x baseline':>11}")
        for label in labels:
            median = statistics.median(wall[label])
            print(
                f"  {label:36} {median:7.3f} {min(wall[label]):7.3f} {statistics.median(cpu[label]):7.3f}"
                f" {median / baseline:11.1f}"
            )
        if args.imports:
            print("top imports of `tunegate --help` (cumulative, python -X importtime, one run):")
            for name, seconds in top_imports(env, args.imports):
                print(f"  {name:48} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
