"""Data-parallel training (`hyperparameters.workers: N`): the worker launches N ranks as child processes that
train one job with torch.distributed (gloo on CPU, NCCL on GPUs), each holding a model replica and taking
batch_size/N records per step, so the effective batch and the loss curve are the single-process run's.

The worker keeps everything that makes a job governed: it alone holds the lease and fencing token and publishes
events. Rank 0 relays the run's bookkeeping to it over an authenticated local connection (begin, logged losses,
"may I checkpoint at step s?", checkpoint saved, done); the worker answers the checkpoint question only after
verifying its lease, and ends every rank on cancel, on a lost lease or when any rank fails. A rank whose worker
disappears exits at once (its connection closes), so a replacement worker never races an orphaned rank.

The ranks read the same environment contract as `torchrun` (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT); the worker is the launcher, so no extra process manager sits between the lease and the ranks."""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path

from services.trainer.domain.progress import TrainingCancelledError
from services.trainer.engine.run import (
    TrainedModel,
    TrainingJob,
    TrainingRun,
    last_complete_checkpoint,
)

log = logging.getLogger("tunegate.trainer.distributed")

CONNECT_ENV = "TUNEGATE_RANK_CONNECT"  # host:port of the worker's listener
AUTHKEY_ENV = "TUNEGATE_RANK_AUTHKEY"  # hex HMAC key: only the ranks this worker launched may talk to it
RANKS_DIR = "ranks"  # under the job's workdir: one log per rank and rank 0's final model
STAGED_FINAL = "final"
POLL_S = 0.1
STOP_GRACE_S = 5.0
FAILURE_SETTLE_S = 3.0  # for the other ranks to fail after one did, so the reason names the first cause
EXIT_GRACE_S = 30.0  # after rank 0 reported the saved model
CONNECT_TIMEOUT_S = 600.0  # importing torch and loading the base on a loaded machine, per rank, in parallel
LOG_TAIL_CHARS = 2000
# Least privilege: a rank trains and reports to its worker, never to the bus or the database, so it does not
# inherit the credentials those URLs may carry.
WITHHELD_ENV = ("TUNEGATE_REDIS_URL", "TUNEGATE_DATABASE_URL")


class RankFailed(RuntimeError):
    """A rank exited or reported an error; the message names the rank and why (the training.failed reason)."""


# ------------------------------------------------------------------------------------------- worker side


@dataclass
class _Rank:
    rank: int
    process: subprocess.Popen[bytes]
    log_path: Path
    conn: Connection | None = None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:].strip()


@dataclass
class _Listening:
    """Accepts the ranks' connections on a thread: Listener.accept blocks, and a rank that dies before
    connecting must not hang the worker."""

    listener: Listener
    accepted: queue.Queue[Connection] = field(default_factory=queue.Queue)

    def start(self, expected: int) -> None:
        def accept() -> None:
            for _ in range(expected):
                try:
                    self.accepted.put(self.listener.accept())
                except (OSError, EOFError):  # closed by the worker, or a connection failing authentication
                    return

        threading.Thread(target=accept, name="tunegate-rank-accept", daemon=True).start()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_environment(rank: int, world_size: int, master_port: int, connect: str, authkey: bytes) -> dict[str, str]:
    """The torchrun environment contract for one local rank, plus where and how to reach the worker."""
    env = {name: value for name, value in os.environ.items() if name not in WITHHELD_ENV}
    env.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port),
        CONNECT_ENV: connect, AUTHKEY_ENV: authkey.hex(),
        # N ranks on one CPU share its cores: one OpenMP team each of cores/N threads, not N teams of all cores.
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // world_size)),
        "TOKENIZERS_PARALLELISM": "false",
    })
    return env


class DistributedTraining:
    """TrainingStrategy for workers > 1: launch the ranks, relay rank 0's reports into the worker's TrainingRun,
    answer checkpoint requests after the lease check, and end every rank on cancel, lease loss or failure."""

    def train(self, run: TrainingRun) -> TrainedModel:
        job = run.job
        world = job.params.workers
        ranks_dir = job.workdir / RANKS_DIR
        shutil.rmtree(ranks_dir, ignore_errors=True)
        ranks_dir.mkdir(parents=True)
        last_complete_checkpoint(run.run_dir)  # removes half-written checkpoints before any rank looks
        authkey = secrets.token_bytes(32)
        listening = _Listening(Listener(("127.0.0.1", 0), authkey=authkey))
        host, port = listening.listener.address
        master_port = free_port()
        ranks: list[_Rank] = []
        try:
            for rank in range(world):
                log_path = ranks_dir / f"rank-{rank}.log"
                with log_path.open("wb") as log_file:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "services.trainer.engine.distributed_rank"],
                        env=rank_environment(rank, world, master_port, f"{host}:{port}", authkey),
                        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    )
                ranks.append(_Rank(rank, process, log_path))
            listening.start(world)
            self._connect(run, job, ranks, listening)
            return self._relay(run, ranks, ranks_dir / STAGED_FINAL)
        finally:
            listening.listener.close()
            _stop(ranks)

    def _connect(self, run: TrainingRun, job: TrainingJob, ranks: list[_Rank], listening: _Listening) -> None:
        """Hand each rank the job once it says which rank it is."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while any(r.conn is None for r in ranks):
            _check_alive(ranks)
            self._check_stop(run, 0)
            if time.monotonic() > deadline:
                raise RankFailed(f"ranks did not connect within {CONNECT_TIMEOUT_S:.0f} s")
            try:
                conn = listening.accepted.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if not conn.poll(CONNECT_TIMEOUT_S):
                raise RankFailed("a rank connected but never said which rank it is")
            kind, rank = conn.recv()
            if kind != "hello" or not isinstance(rank, int) or not 0 <= rank < len(ranks) or ranks[rank].conn:
                raise RankFailed(f"unexpected handshake from a rank: {kind!r} {rank!r}")
            ranks[rank].conn = conn
            conn.send(job)

    def _check_stop(self, run: TrainingRun, step: int) -> None:
        """Cancel or a lost lease (run.cancel_requested raises LeaseLost) ends every rank: the caller's finally
        stops them."""
        if run.cancel_requested():
            raise TrainingCancelledError(step)

    def _relay(self, run: TrainingRun, ranks: list[_Rank], staged_final: Path) -> TrainedModel:
        main = ranks[0].conn
        assert main is not None
        step = 0
        done: tuple[dict[str, float], int] | None = None
        done_at: float | None = None
        while True:
            for r in ranks:
                if r.conn is not None and r.rank != 0 and r.conn.poll():
                    self._from_other_rank(r, ranks)
            while main.poll():
                try:
                    message = main.recv()
                except EOFError:
                    break  # rank 0 exited; _check_alive reports why
                kind = message[0]
                if kind == "begin":
                    step = message[1]
                    run.begin(message[1], message[2])
                elif kind == "logged":
                    _, step, loss, tokens, extras = message
                    run.logged(step, loss, tokens, **extras)
                elif kind == "before_checkpoint":
                    step = message[1]
                    run.before_checkpoint(step)  # raises LeaseLost: this worker may no longer write
                    main.send(("checkpoint_ok", step))
                elif kind == "checkpointed":
                    step = message[1]
                    run.hooks.checkpointed(step, Path(message[2]))
                elif kind == "done":
                    done = (message[1], message[2])
                elif kind == "failed":
                    raise _failure(ranks, (0, message[2]))
            if done is not None:
                done_at = done_at or time.monotonic()
                codes = [r.process.poll() for r in ranks]
                # Rank 0 reports done only after the last step's collectives, so every rank has trained; one
                # slow or failing on its way out holds nothing the job needs (the finally block stops it).
                if all(code == 0 for code in codes) or time.monotonic() - done_at > EXIT_GRACE_S:
                    if any(code != 0 for code in codes):
                        log.warning("job %s: ranks after the model was saved: exit codes %s", run.job.job_id, codes)
                    return self._trained(done, len(ranks), staged_final)
                time.sleep(POLL_S)
                continue
            _check_alive(ranks)
            if done is None and all(r.process.poll() == 0 for r in ranks):
                raise RankFailed("every rank exited without rank 0 reporting the trained model")
            self._check_stop(run, step)
            time.sleep(POLL_S)

    @staticmethod
    def _trained(done: tuple[dict[str, float], int], workers: int, staged_final: Path) -> TrainedModel:
        metrics, resumed_from = done
        metrics["workers"] = float(workers)

        def save(directory: Path) -> None:
            # Moved, not copied: the job's volume should not hold the final model twice.
            shutil.move(staged_final, directory)

        return TrainedModel(save=save, metrics=metrics, resumed_from_step=resumed_from)

    def _from_other_rank(self, r: _Rank, ranks: list[_Rank]) -> None:
        assert r.conn is not None
        try:
            message = r.conn.recv()
        except EOFError:
            return
        if message[0] == "failed":
            raise _failure(ranks, (r.rank, message[2]))


def _exit_reason(r: _Rank, code: int) -> str:
    # A rank that died by a signal reports a negative code: name the signal rather than a number.
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    tail = r.log_tail().splitlines()
    return f"rank {r.rank} {how} ({tail[-1] if tail else 'no output'}; its log: {r.log_path})"


def _failure(ranks: list[_Rank], reported: tuple[int, str] | None = None) -> RankFailed:
    """One reason naming every rank that went down. When one rank dies the others fail in their next collective
    with a peer-closed error, so wait a moment for them and put the ranks killed by a signal, the cause, first."""
    deadline = time.monotonic() + FAILURE_SETTLE_S
    while time.monotonic() < deadline and any(r.process.poll() is None for r in ranks):
        time.sleep(POLL_S)
    exited = [(r, code) for r in ranks if (code := r.process.poll()) not in (None, 0)
              and (reported is None or r.rank != reported[0])]
    exited.sort(key=lambda item: (item[1] >= 0, item[0].rank))
    reasons = [_exit_reason(r, code) for r, code in exited]
    if reported:
        reasons.insert(sum(1 for _, code in exited if code < 0), f"rank {reported[0]} failed: {reported[1]}")
    return RankFailed("; ".join(reasons) or "a rank failed without a reason")


def _check_alive(ranks: list[_Rank]) -> None:
    """Any rank that exited with an error fails the job; the others would wait for it in their next collective."""
    if any(r.process.poll() not in (None, 0) for r in ranks):
        raise _failure(ranks)


def _stop(ranks: list[_Rank]) -> None:
    """End every rank still running: SIGTERM, then SIGKILL after a grace period."""
    for r in ranks:
        if r.process.poll() is None:
            r.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for r in ranks:
        try:
            r.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait()
        if r.conn is not None:
            r.conn.close()
