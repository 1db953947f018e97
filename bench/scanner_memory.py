"""Scanner memory on a large file: resident memory over time while `tunegate scan` streams a generated JSONL.

    .venv/bin/python bench/scanner_memory.py [--size-mb 1000] [--workers N] [--no-ner] [--max-seconds S]

Generates a JSONL of --size-mb (chat records as bench/scanner_throughput.py builds them: a system prompt, a
Faker ticket or chat with names and free text, an assistant text with planted PII and secrets; every record
made distinct by a line of its own, so the scanner's text cache is spared nothing and only lines the templates
repeat are read once) in a temporary directory, streaming, and deletes it afterwards. It then runs the real
CLI (`python -m services.cli.main scan`, NER on unless --no-ner) as a child process and samples, every
--sample-s seconds, the resident memory (RSS) of the scan process and of its workers together with how far the
scan has read its input (the file position of the dataset, from /proc via psutil; it runs ahead of the records
done by at most the chunks in flight, about 1 MB, so it is a measure for large files only).

It prints a row every 5% of the input (and at least every --row-s seconds), then start / peak / end RSS
and the least-squares slope of total RSS (scan process + workers) against bytes read, in MB of RSS per
100 MB of input, over the samples after the first 10% of what was read (model load and the first chunks'
buffers come before that). A streamed scan has a slope near 0; a scan that held records, findings or spaCy
strings would grow with the file.
--max-seconds stops the scan (and reports what was sampled so far) when the whole file would take too long."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scanner_throughput import build_records

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "classification: internal\nlegal_basis: contract\nconsent_covers_training: true\n"
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    read_bytes: int
    main_mb: float
    workers_mb: float  # all workers together
    largest_worker_mb: float

    @property
    def total_mb(self) -> float:
        return self.main_mb + self.workers_mb


def generate(path: Path, size_mb: float, seed: int) -> tuple[int, int]:
    """Write about size_mb of distinct chat records, a line at a time (never the whole file in memory)."""
    records, _ = build_records(2000, seed, 0.5)
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_mb * MB:
            record = json.loads(json.dumps(records[count % len(records)]))
            # Every record distinct: a cycled corpus would let the scanner's repeat cache skip the work.
            record["messages"][1]["content"] += f"\n(ticket {count})"
            line = json.dumps(record) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
            count += 1
    return written, count


def _position(proc: psutil.Process, dataset: Path) -> int | None:
    """How far the scan process has read the dataset (the open file's offset), or None while it is not open."""
    for f in proc.open_files():
        if f.path == str(dataset) and f.position is not None:
            return int(f.position)
    return None


class Sampler:
    """RSS of the scan process and its workers and the dataset read position, every `every` seconds."""

    def __init__(self, proc: psutil.Process, dataset: Path, every: float) -> None:
        self.proc, self.dataset, self.every = proc, dataset, every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(psutil.Error):
                main = self.proc.memory_info().rss / 2**20
                position = _position(self.proc, self.dataset)
                workers = []
                for child in self.proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        workers.append(child.memory_info().rss / 2**20)
                if position is None:
                    continue  # not open yet (model and registry loading) or closed (report writing, exit)
                self.samples.append(
                    Sample(time.perf_counter() - self._started, position, main, sum(workers), max(workers, default=0.0))
                )

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def slope_mb_per_100mb(samples: list[Sample]) -> float | None:
    """Least-squares slope of total RSS against bytes read, MB of RSS per 100 MB of input."""
    xs = [s.read_bytes / (100 * MB) for s in samples]
    ys = [s.total_mb for s in samples]
    if len(xs) < 3 or max(xs) - min(xs) <= 0:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def row(s: Sample, size: int) -> str:
    return (
        f"{s.seconds:8.0f}s {s.read_bytes / MB:8.1f} MB ({100 * s.read_bytes / size:5.1f}%)   "
        f"scan process {s.main_mb:6.0f} MB   workers {s.workers_mb:6.0f} MB (largest {s.largest_worker_mb:5.0f})   "
        f"total {s.total_mb:6.0f} MB"
    )


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """End the scan we started and its workers (they are in its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000, help="Size of the generated JSONL (default 1 GB).")
    parser.add_argument("--workers", type=int, default=None, help="Scanner workers (default: all cores).")
    parser.add_argument("--no-ner", action="store_true", help="Scan without NER.")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sample-s", type=float, default=1.0, help="Seconds between RSS samples.")
    parser.add_argument("--row-s", type=float, default=120, help="Print a row at least this often (seconds).")
    parser.add_argument("--max-seconds", type=float, default=0, help="Stop the scan after this long (0: no limit).")
    args = parser.parse_args()
    if args.size_mb <= 0 or args.sample_s <= 0 or args.max_seconds < 0:
        parser.error("--size-mb and --sample-s must be positive, --max-seconds not negative")
    workers = args.workers or os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="tunegate-scanner-memory-") as tmp:
        dataset = Path(tmp) / "large.jsonl"
        started = time.perf_counter()
        size, count = generate(dataset, args.size_mb, args.seed)
        Path(f"{dataset}.manifest.yaml").write_text(MANIFEST, encoding="utf-8")
        print(
            f"generated {size / MB:,.0f} MB, {count:,} distinct chat records in {time.perf_counter() - started:.0f}s; "
            f"scanning with NER {'off' if args.no_ner else 'on'}, {workers} workers, {os.cpu_count()} cores",
            flush=True,
        )
        command = [sys.executable, "-m", "services.cli.main", "scan", str(dataset), "--workers", str(workers)]
        command += ["--no-ner"] if args.no_ner else []
        # The CLI keeps its redaction key under TUNEGATE_HOME: a throwaway one, not the user's.
        env = {**os.environ, "TUNEGATE_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(ROOT)}
        scan = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        stopped = False
        next_row, next_row_s = 0.05, args.row_s
        # A SIGTERM (a run stopped from outside) still stops the scan's own process group and cleans up.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            with Sampler(psutil.Process(scan.pid), dataset, args.sample_s) as sampler:
                while scan.poll() is None:
                    time.sleep(args.sample_s)
                    last = sampler.samples[-1] if sampler.samples else None
                    if last and (last.read_bytes >= next_row * size or last.seconds >= next_row_s):
                        print(row(last, size), flush=True)
                        next_row, next_row_s = last.read_bytes / size + 0.05, last.seconds + args.row_s
                    if args.max_seconds and sampler.samples and sampler.samples[-1].seconds > args.max_seconds:
                        stopped = True
                        stop_tree(scan)
        finally:
            if scan.poll() is None:
                stop_tree(scan)
        output = scan.stdout.read().decode("utf-8", "replace") if scan.stdout else ""
        report(sampler.samples, size, stopped, scan.returncode, output)


def report(samples: list[Sample], size: int, stopped: bool, returncode: int | None, output: str) -> None:
    scanning = [s for s in samples if s.read_bytes > 0]
    if not scanning:
        print(f"no samples while scanning (exit {returncode}):\n{output}")
        return
    last = scanning[-1]
    how = "stopped (--max-seconds)" if stopped else f"finished (exit {returncode})"
    print(f"\nscan {how} after {last.seconds:.0f}s, {last.read_bytes / MB:,.0f} of {size / MB:,.0f} MB read")
    if not stopped:
        lines = output.splitlines()
        print("\n".join(lines[:1] + [line for line in lines if line.startswith("detectors:")]))
    start, peak = scanning[0], max(scanning, key=lambda s: s.total_mb)
    print(
        f"RSS total (scan process + workers): start {start.total_mb:.0f} MB, peak {peak.total_mb:.0f} MB "
        f"(at {peak.read_bytes / MB:,.0f} MB read), end {last.total_mb:.0f} MB; largest worker peak "
        f"{max(s.largest_worker_mb for s in scanning):.0f} MB, "
        f"scan process peak {max(s.main_mb for s in scanning):.0f} MB"
    )
    steady = [s for s in scanning if s.read_bytes >= 0.1 * last.read_bytes]
    slope = slope_mb_per_100mb(steady)
    if slope is None:
        print("slope: too few samples after the first 10% of the input")
    else:
        print(
            f"slope of total RSS vs bytes read after the first 10%: {slope:+.2f} MB per 100 MB of input "
            f"({len(steady)} samples, {steady[0].read_bytes / MB:,.0f} to {last.read_bytes / MB:,.0f} MB)"
        )


if __name__ == "__main__":
    main()
