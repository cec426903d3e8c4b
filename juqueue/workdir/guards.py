"""The refusals before a work dir of the previous layout moves: each one checked before anything
moves, each with a message that says what to do.

- the original JuQueue runs on the work dir (it holds `W/.lock`): two schedulers must not share
  the runs' directories;
- an old `serve` holds the old layout's lock (`OldLayoutLock` holds it for the whole migration,
  so one starting meanwhile refuses itself);
- SLURM jobs the store knows are alive, or a local worker left by a killed `serve` still runs:
  their job scripts and workers use the old paths;
- an experiment directory of `W/runs/` has no free place at the top of the work dir.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Callable, Sequence

from juqueue.errors import WorkDirMigrationError
from juqueue.file_lock import acquire_flock, release_flock
from juqueue.paths import STATE_DIR_NAME, LegacyWorkDir, OriginalWorkDir, WorkDir
from juqueue.store.raw_reads import LiveNode, live_nodes_in_store
from juqueue.workdir.moves import RUNS_IN_TRANSIT


def refuse_running_original(work: WorkDir) -> None:
    """The original JuQueue holds `W/.lock` (an flock) while it runs: two schedulers must not
    share the runs' directories."""
    path = OriginalWorkDir(work.root).lock_file
    if not path.is_file():
        return
    try:
        fh = open(path, "r")
    except OSError:
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirMigrationError(
                f"the original JuQueue is running on work dir {work.root} (it holds {path}); stop it first") from None
        fcntl.flock(fh, fcntl.LOCK_UN)


class OldLayoutLock:
    """Hold the old layout's lock while migrating: an old `serve` running on the work dir
    refuses the migration, and one starting meanwhile refuses itself."""

    def __init__(self, legacy: LegacyWorkDir) -> None:
        self.legacy = legacy
        self.fh = None

    def __enter__(self) -> "OldLayoutLock":
        path = self.legacy.lock_file
        if not path.is_file():
            return self
        self.fh = acquire_flock(path, lambda holder: WorkDirMigrationError(
            f"work dir {self.legacy.root} is in the layout of an earlier JuQueue release and in use by its server "
            f"({holder}; lock {path}); stop it first, then start this one to migrate the work dir"), record_holder=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            release_flock(self.fh)


def check_experiment_names(work: WorkDir, legacy: LegacyWorkDir) -> None:
    """Every experiment directory of W/runs/ must have a free place at the top of the work dir;
    checked before anything moves."""
    transit = work.state_dir / RUNS_IN_TRANSIT
    source = transit if transit.is_dir() else legacy.runs_dir
    if not source.is_dir():
        return
    freed = {old.name for old, _new in legacy.moves(work)} | {p.name for p in legacy.stale_files} | {legacy.runs_dir.name}
    clashes = []
    for exp_dir in sorted(source.iterdir()):
        target = work.experiment_dir(exp_dir.name)
        if exp_dir.name == STATE_DIR_NAME:
            clashes.append(f"{exp_dir} (the name {STATE_DIR_NAME} is JuQueue's own directory)")
        elif (target.exists() or target.is_symlink()) and exp_dir.name not in freed:
            clashes.append(f"{exp_dir} -> {target} (exists)")
    if clashes:
        raise WorkDirMigrationError(
            "cannot migrate work dir " + str(work.root) + ": run directories move from W/runs/<experiment> to "
            "W/<experiment>, and these have no free place: " + "; ".join(clashes) + ". Move them away; nothing was moved")


# ---------------------------------------------------------------------- what must not be moved under running jobs
def _store_url(work: WorkDir, legacy: LegacyWorkDir, db_url: str | None) -> str | None:
    if db_url is not None:
        return db_url
    for db in (legacy.db_file, work.db_file):  # the new place: a migration cut short
        if db.is_file():
            return f"sqlite:///{db}"
    return None


def refuse_live_nodes(work: WorkDir, legacy: LegacyWorkDir, db_url: str | None,
                      slurm_jobs: Callable[[], Sequence[object]] | None = None,
                      pid_is_worker: Callable[[int, str], bool] | None = None) -> None:
    """Refuse while nodes the store lists as live still run: SLURM jobs (asked with `slurm_jobs`,
    default one `squeue` call) and local workers (`pid_is_worker`, default /proc)."""
    slurm_jobs = slurm_jobs or _squeue_jobs
    pid_is_worker = pid_is_worker or _pid_is_worker
    url = _store_url(work, legacy, db_url)
    if url is None:
        return
    try:
        nodes = live_nodes_in_store(url)
    except Exception as exc:  # noqa: BLE001 - any driver error: name it, move nothing
        raise WorkDirMigrationError(
            f"cannot migrate work dir {work.root}: reading its store to check for live SLURM jobs failed ({exc}); "
            "nothing was moved") from None
    slurm = [n for n in nodes if n.backend == "slurm"]
    if slurm:
        try:
            jobs = list(slurm_jobs())
        except Exception as exc:  # noqa: BLE001
            names = ", ".join(f"{n.name} (job {n.job_id or 'not yet known'})" for n in slurm)
            raise WorkDirMigrationError(
                f"cannot migrate work dir {work.root} now: its store lists live SLURM nodes ({names}) and SLURM "
                f"cannot be asked whether they still run ({exc}). Start this where squeue works; nothing was moved") from None
        alive = [n for n in slurm if _job_alive(n, jobs)]
        if alive:
            names = ", ".join(f"{n.name} (job {n.job_id or '?'})" for n in alive)
            raise WorkDirMigrationError(
                f"cannot migrate work dir {work.root} now: SLURM jobs of it are still alive ({names}); their job scripts "
                "and workers use the old layout's paths. Let them end, or stop them with the release that started them "
                "(`juqueue stop --cancel-jobs`), then start this one again; nothing was moved")
    local = [n for n in nodes if n.backend == "local" and n.pid and pid_is_worker(int(n.pid), n.name)]
    if local:
        names = ", ".join(f"{n.name} (pid {n.pid})" for n in local)
        raise WorkDirMigrationError(
            f"cannot migrate work dir {work.root} now: local workers left by an earlier serve still run ({names}); "
            "stop them (kill PID) and start again; nothing was moved")


def _job_alive(node: LiveNode, jobs: Sequence[object]) -> bool:
    for job in jobs:
        if getattr(job, "gone", False):
            continue
        if node.job_id and getattr(job, "job_id", None) == node.job_id:
            return True
        if node.token and (node.token in getattr(job, "name", "") or node.token in getattr(job, "comment", "")):
            return True
    return False


def _squeue_jobs() -> list[object]:
    from juqueue.backends.slurm_commands import list_jobs

    return list(list_jobs(""))


def _pid_is_worker(pid: int, node: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"juqueue.workers.node" in cmdline and node.encode() in cmdline


__all__ = ["OldLayoutLock", "check_experiment_names", "refuse_live_nodes", "refuse_running_original"]
