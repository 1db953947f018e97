"""A run's weights off the disk, every removal through one careful path. A failed run's checkpoints (and a final
model a check refused) were trained on possibly sensitive data, yet no registered model, evaluation or audit trail
stands behind them, and nothing will resume from them once the job is recorded as failed; a completed run's
checkpoints are spent once its result is packaged. Either way they are removed from the job's own directory, and
only from there. The caller must still hold the job's lease: after a lease moved, the directory is the new
holder's."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from services.trainer.engine.distributed import RANKS_DIR, STAGED_FINAL
from services.trainer.engine.loop import FINAL_DIR
from services.trainer.engine.run import RUN_DIR
from shared.ids import validate_job_id

log = logging.getLogger("tunegate.trainer")

# Below the job's directory, what holds trained weights. run/ is the trainers' output_dir: with report_to=[]
# it holds only checkpoint-N folders (weights, optimizer state, the trainer's own state), so it goes whole;
# the loss history they carry already left as training.progress events. Left on purpose: ranks/*.log, the
# ranks' output (why a distributed run failed; no weights), and the unpacked rlhf inputs (reward_model/,
# policy/), copies of registered versions whose audit trail exists.
WEIGHT_DIRS: tuple[PurePath, ...] = (PurePath(RUN_DIR), PurePath(FINAL_DIR), PurePath(RANKS_DIR, STAGED_FINAL))


def discard_failed_run(workdir: Path, job_id: str) -> bool:
    """Remove the failed run's weights (WEIGHT_DIRS) from `workdir`, the job's own directory. Never raises: the
    job's failure is what must be reported, so whatever stops the removal is logged instead (the operator then
    removes the rest by hand). True when nothing of WEIGHT_DIRS is left."""
    return _discard_logged(workdir, job_id, WEIGHT_DIRS)


def discard_checkpoints(workdir: Path, job_id: str) -> bool:
    """After a completed run, packaged and recorded: its checkpoints (run/), with the same care and logging."""
    return _discard_logged(workdir, job_id, (PurePath(RUN_DIR),))


def _discard_logged(workdir: Path, job_id: str, relatives: tuple[PurePath, ...]) -> bool:
    try:
        return _discard(workdir, job_id, relatives)
    except Exception:
        log.exception("job %s: removing the run's weights under %s failed; remove them by hand", job_id, workdir)
        return False


def _discard(workdir: Path, job_id: str, relatives: tuple[PurePath, ...]) -> bool:
    # Only the directory named by the job's validated id: never a folder some other path led to.
    if workdir.name != validate_job_id(job_id):
        raise ValueError(f"{workdir} is not job {job_id}'s directory")
    if _a_link_left_alone(workdir, job_id):
        return False
    if not workdir.is_dir():
        return True
    clean = True
    for relative in relatives:
        clean = _remove(workdir, relative, job_id) and clean  # one refused folder must not spare the others
    return clean


def _remove(workdir: Path, relative: PurePath, job_id: str) -> bool:
    target = workdir / relative
    for depth in range(1, len(relative.parts) + 1):
        if _a_link_left_alone(workdir.joinpath(*relative.parts[:depth]), job_id):
            return False
    if not target.exists():
        return True
    errors: list[str] = []

    def record(function: Any, path: str, exc_info: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        errors.append(f"{path}: {exc_info[1]}")

    try:
        if target.is_dir():
            # rmtree removes a symlink inside the tree as a link, never descending into it (on Linux it walks by
            # file descriptor, so a link swapped in during the walk is not followed either).
            shutil.rmtree(target, onerror=record)
        else:
            target.unlink()
    except OSError as exc:
        errors.append(f"{target}: {exc}")
    for error in errors:
        log.error("job %s: could not remove the run's weights: %s", job_id, error)
    return not errors


def _a_link_left_alone(path: Path, job_id: str) -> bool:
    """True (and logged) when `path` is a symlink. Following it would delete outside the job's directory;
    removing only the link would hide the weights behind it. Left as it is, it shows the operator where they are."""
    if not path.is_symlink():
        return False
    log.error("job %s: %s is a symlink to %s; not following it to remove the run's weights", job_id, path,
              _target(path))
    return True


def _target(link: Path) -> str:
    try:
        return str(link.readlink())
    except OSError as exc:
        return f"<unreadable: {exc}>"
