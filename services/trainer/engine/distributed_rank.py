"""One rank of a data-parallel job (engine/distributed.py launches N of these): it connects back to the worker
that launched it, trains its share with the plain training loop, and reports through rank 0; it never
publishes or checks a lease itself. Run as `python -m services.trainer.engine.distributed_rank` with torchrun's
environment contract (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and the worker's connect address
and key."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import sys
import threading
from dataclasses import replace
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from services.trainer.engine.distributed import AUTHKEY_ENV, CONNECT_ENV, RANKS_DIR, STAGED_FINAL
from services.trainer.engine.run import (
    SilentHooks,
    TrainingJob,
    TrainingRun,
    mark_checkpoint_complete,
    normalise_saved_model,
)

log = logging.getLogger("tunegate.trainer.distributed")

class RankRun(TrainingRun):
    """The TrainingRun a rank's trainer loop reports into. Rank 0 forwards each report to the worker, whose own
    TrainingRun publishes it; other ranks keep only their loss history. Stopping is the worker's decision, made
    by ending the ranks, so no rank ever stops alone and leaves the others waiting in a collective."""

    def __init__(self, job: TrainingJob, rank: int, conn: Connection, replies: queue.Queue[Any]) -> None:
        super().__init__(job, SilentHooks())
        self.rank, self.conn, self.replies = rank, conn, replies

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def begin(self, step: int, tokens: int = 0) -> None:
        if self.is_main:
            self.conn.send(("begin", step, tokens))

    def cancel_requested(self) -> bool:
        return False

    def logged(self, step: int, loss: float, tokens: int, *, learning_rate: float | None,
               epoch: float | None = None, reward: float | None = None, kl: float | None = None) -> None:
        self.history.append((step, loss))
        if self.is_main:
            self.conn.send(("logged", step, loss, tokens,
                            {"learning_rate": learning_rate, "epoch": epoch, "reward": reward, "kl": kl}))

    def before_checkpoint(self, step: int) -> None:
        if not self.is_main:
            return
        self.conn.send(("before_checkpoint", step))
        reply = self.replies.get()  # the worker answers only after verifying its lease, or ends every rank
        if reply != ("checkpoint_ok", step):
            raise RuntimeError(f"rank 0: unexpected reply {reply!r} to the checkpoint request at step {step}")

    def checkpoint_saved(self, directory: Path, step: int) -> None:
        import torch.distributed as dist

        # Every rank writes its own RNG state into the checkpoint after rank 0 saved the model: the
        # checkpoint is complete only once all of them got here.
        dist.barrier()
        if self.is_main:
            normalise_saved_model(directory, self.job.base.name)
            mark_checkpoint_complete(directory, step)
            self.conn.send(("checkpointed", step, str(directory)))


def _watch_worker(conn: Connection, replies: queue.Queue[Any]) -> None:
    """Hand the worker's replies to the training thread; when the worker is gone (connection closed), exit at
    once: without the worker nobody holds the lease, and a replacement may already be resuming the job."""
    while True:
        try:
            replies.put(conn.recv())
        except (EOFError, OSError):
            os._exit(3)


def rank_main() -> int:
    from services.trainer.engine.plain import PlainTraining
    from shared.models.bases import configure_offline

    rank = int(os.environ["RANK"])
    host, port = os.environ[CONNECT_ENV].rsplit(":", 1)
    authkey = bytes.fromhex(os.environ.pop(AUTHKEY_ENV))
    conn = Client((host, int(port)), authkey=authkey)
    conn.send(("hello", rank))
    job: TrainingJob = conn.recv()
    replies: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_watch_worker, args=(conn, replies), name="tunegate-worker-watch", daemon=True).start()
    try:
        configure_offline()
        import torch

        if torch.cuda.is_available():
            # One GPU per local rank; accelerate then picks NCCL for the process group.
            local_rank, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
            if local_rank >= gpus:
                raise RuntimeError(f"hyperparameters.workers asks for rank {local_rank} on a node with {gpus} GPUs "
                                   "(one rank per GPU)")
            torch.cuda.set_device(local_rank)
            job = replace(job, device="cuda")
        trained = PlainTraining().train(RankRun(job, rank, conn, replies))
        log.info("rank %d trained to step %d", rank, int(trained.metrics["steps"]))
        if rank == 0:
            staged = job.workdir / RANKS_DIR / STAGED_FINAL
            shutil.rmtree(staged, ignore_errors=True)
            trained.save(staged)
            normalise_saved_model(staged, job.base.name)
            conn.send(("done", trained.metrics, trained.resumed_from_step))
            log.info("rank 0 saved the final model into %s", staged)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        log.info("rank %d done", rank)
        return 0
    except Exception as exc:
        log.exception("rank %d failed", rank)
        with contextlib.suppress(OSError):  # the worker may already be gone; the exit code still tells it
            conn.send(("failed", rank, f"{type(exc).__name__}: {exc}"))
        return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(process)d %(levelname)s %(message)s")
    status = rank_main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: with torch, trl and pyarrow loaded its garbage collection was seen taking
    # minutes on a loaded machine, holding the job after the model was saved. Nothing is left to clean up.
    os._exit(status)
