"""Work dirs written by earlier releases, brought into today's layout (see juqueue.paths).

Two kinds:

- The layout of JuQueue releases before `W/.juqueue/` (`W/runs/<experiment>/<run>`, `W/token`,
  `W/juqueue.db`, `W/broker/`, `W/nodes/`, ...). `serve` moves it at start with
  `migrate_work_dir`, under the work dir's lock: every step is one rename (atomic on one file
  system), logged, and the whole is idempotent, so a migration cut short goes on at the next
  `serve`. It is refused, before anything moves, while an old `serve` holds the old lock, while
  SLURM jobs the store knows are alive (their job scripts and workers use the old paths), or
  while a local worker left by a killed `serve` still runs.
- A work dir of the original JuQueue (0.0.15): its runs are already at `W/<experiment>/<run>`;
  `original_run_statuses` reads what it knew of each run from `juqueue-run.json` (a pure
  read: the caller decides what to do with it).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from juqueue.errors import ConfigError
from juqueue.paths import STATE_DIR_NAME, LegacyWorkDir, OriginalWorkDir, WorkDir, read_json, write_atomic

log = logging.getLogger("juqueue.workdir")

LAYOUT_VERSION = "2"  # 1: everything at the top of W, runs under W/runs/; 2: W/<experiment>/<run>, W/.juqueue/
RUNS_IN_TRANSIT = "runs-migrating"  # W/runs/ is renamed to W/.juqueue/runs-migrating/ first, then emptied


class WorkDirMigrationError(ConfigError):
    """The work dir cannot be migrated now; the message says why and what to do. Nothing was moved
    unless the message says so."""


@dataclass(frozen=True)
class LiveNode:
    """A node the store lists as live (state not gone/failed)."""

    name: str
    backend: str
    state: str
    job_id: str | None
    token: str
    pid: int | None


@dataclass
class MigrationReport:
    """What `migrate_work_dir` did; `moved` lists (from, to) in order."""

    migrated: bool = False
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------- today's layout -> W/.juqueue
def needs_migration(work: WorkDir) -> bool:
    """True when the work dir (or part of it) is still in the layout before `W/.juqueue/`."""
    if work.layout_file.is_file():
        return False
    legacy = LegacyWorkDir(work.root)
    return any(p.is_file() for p in legacy.markers()) or (work.state_dir / RUNS_IN_TRANSIT).is_dir()


def mark_current_layout(work: WorkDir) -> None:
    """Record that the work dir is in today's layout (a new work dir, or once migrated)."""
    if not work.layout_file.is_file():
        work.ensure_state_dir()
        write_atomic(work.layout_file, LAYOUT_VERSION + "\n")


def migrate_work_dir(work: WorkDir, db_url: str | None = None, *,
                     slurm_jobs: Callable[[], Sequence[object]] | None = None,
                     pid_is_worker: Callable[[int, str], bool] | None = None) -> MigrationReport:
    """Move a work dir in the layout before `W/.juqueue/` into today's; mark a new or
    migrated one. Call it holding the work dir's (new) lock, before anything opens the store.

    `db_url` is the store when it is not the work dir's SQLite file (then only the files move).
    `slurm_jobs` lists this user's SLURM jobs (default: one `squeue` call); `pid_is_worker`
    says whether a pid is a live JuQueue worker of a node (default: /proc). Both are
    replaceable for tests. Raises WorkDirMigrationError when it must not run now.
    """
    report = MigrationReport()
    _refuse_running_original(work)
    if not needs_migration(work):
        mark_current_layout(work)
        return report
    legacy = LegacyWorkDir(work.root)
    work.ensure_state_dir()
    with _old_lock(legacy):
        _refuse_live_nodes(work, legacy, db_url, slurm_jobs or _squeue_jobs, pid_is_worker or _pid_is_worker)
        _check_experiment_names(work, legacy)
        log.info("work dir %s: migrating to the layout with JuQueue's files in %s/ and runs at %s/<experiment>/<run>",
                 work.root, work.state_dir, work.root)
        _stop_stale_broker(legacy)
        for old, new in legacy.moves(work):
            _move(old, new, report)
        for stale in legacy.stale_files:  # before the experiments: their names are free then
            if stale.is_file():
                stale.unlink()
                report.removed.append(stale)
                log.info("work dir migration: removed %s (it belonged to the old layout's server)", stale)
        transit = work.state_dir / RUNS_IN_TRANSIT
        if legacy.runs_dir.is_dir() and not transit.exists():
            _move(legacy.runs_dir, transit, report)
        if transit.is_dir():
            for exp_dir in sorted(transit.iterdir()):
                _move(exp_dir, work.experiment_dir(exp_dir.name), report)
            transit.rmdir()
        mark_current_layout(work)
    report.migrated = True
    log.info("work dir %s: migrated (%d moves)", work.root, len(report.moved))
    return report


def _refuse_running_original(work: WorkDir) -> None:
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


class _old_lock:
    """Hold the old layout's lock while migrating: an old `serve` running on the work dir
    refuses the migration, and one starting meanwhile refuses itself."""

    def __init__(self, legacy: LegacyWorkDir) -> None:
        self.legacy = legacy
        self.fh = None

    def __enter__(self) -> "_old_lock":
        path = self.legacy.lock_file
        if not path.is_file():
            return self
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise WorkDirMigrationError(
                f"work dir {self.legacy.root} is in the layout of an earlier JuQueue release and in use by its server "
                f"({holder}; lock {path}); stop it first, then start this one to migrate the work dir") from None
        self.fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


def _move(old: Path, new: Path, report: MigrationReport) -> None:
    """One rename; a source already gone was moved by an earlier, interrupted migration."""
    if not (old.exists() or old.is_symlink()):
        return
    if new.exists() or new.is_symlink():
        raise WorkDirMigrationError(
            f"cannot migrate work dir: {old} would move to {new}, which exists already; move one of them away "
            f"(the migration goes on from there at the next start; {len(report.moved)} moves done this time)")
    try:
        new.parent.mkdir(parents=True, exist_ok=True)
        os.rename(old, new)
    except OSError as exc:
        raise WorkDirMigrationError(
            f"cannot migrate work dir: moving {old} to {new} failed ({exc.strerror or exc}); fix that and start again "
            f"(the migration goes on from there; {len(report.moved)} moves done this time)") from None
    report.moved.append((old, new))
    log.info("work dir migration: moved %s -> %s", old, new)


def _check_experiment_names(work: WorkDir, legacy: LegacyWorkDir) -> None:
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


def live_nodes_in_store(url: str) -> list[LiveNode]:
    """Nodes the store lists as live (state not gone/failed); [] without a nodes table."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table("nodes"):
                return []
            rows = conn.execute(sqlalchemy.text(
                "SELECT name, backend, state, job_id, token, pid FROM nodes WHERE state NOT IN ('gone', 'failed')")).all()
    finally:
        engine.dispose()
    return [LiveNode(name=r[0], backend=r[1], state=r[2], job_id=r[3], token=r[4] or "", pid=r[5]) for r in rows]


def _refuse_live_nodes(work: WorkDir, legacy: LegacyWorkDir, db_url: str | None,
                       slurm_jobs: Callable[[], Sequence[object]], pid_is_worker: Callable[[int, str], bool]) -> None:
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


def _stop_stale_broker(legacy: LegacyWorkDir) -> None:
    """An embedded broker left running by a `serve` that was killed: shut it down (its AOF keeps
    its data) so the next start runs it from the new place."""
    state = read_json(legacy.broker_dir / "broker.json") or {}
    if not state.get("port") or not state.get("password"):
        return
    try:
        socket.create_connection(("127.0.0.1", int(state["port"])), timeout=2).close()
    except OSError:
        return  # nothing listens: not running
    import redis

    client = redis.Redis(host="127.0.0.1", port=int(state["port"]), password=state["password"], socket_timeout=5,
                         socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return  # not running (or not ours): nothing to stop
    log.info("work dir migration: stopping the embedded broker left running on port %s", state["port"])
    try:
        client.shutdown(nosave=False)
    except redis.ConnectionError:
        pass  # the connection closes as it shuts down
    except redis.RedisError as exc:
        raise WorkDirMigrationError(
            f"cannot migrate work dir {legacy.root}: its embedded broker (port {state['port']}) is still running and "
            f"refused to stop ({exc}); nothing was moved") from None


# ---------------------------------------------------------------------- the original JuQueue's work dir
ORIGINAL_STATUS = {"finished": "completed", "failed": "failed", "inactive": "held", "ready": "queued"}


class OriginalStatuses(NamedTuple):
    """What the original JuQueue knew of each run: global id -> status ("completed",
    "failed", "held" or "queued"); a file that could not be read is not in `statuses` (its
    run is new) and has a warning naming it."""

    statuses: dict[str, str]
    warnings: list[str]


def original_run_statuses(work_dir: Path | str) -> OriginalStatuses:
    """Read every `W/<experiment>/<run>/juqueue-run.json` the original JuQueue wrote.

    The original kept `{"status": ..., "created_at": ...}` there, the status one of
    `finished`, `failed`, `inactive`, `ready` (a running run was saved as `ready`). They map
    to completed, failed, held and queued. Directories whose name starts with "." (JuQueue's
    own `W/.juqueue`) are skipped. Pure: reads files, changes nothing.
    """
    root = Path(work_dir)
    original = OriginalWorkDir(root)
    statuses: dict[str, str] = {}
    warnings: list[str] = []
    try:
        experiments = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return OriginalStatuses(statuses, warnings)
    for exp_dir in experiments:
        try:
            run_dirs = sorted(p for p in exp_dir.iterdir() if p.is_dir())
        except OSError as exc:
            warnings.append(f"{exp_dir}: cannot list it ({exc.strerror}); its runs start as new runs")
            continue
        for run_dir in run_dirs:
            path = original.run_status_file(exp_dir.name, run_dir.name)
            if not (path.exists() or path.is_symlink()):
                continue
            gid = f"{exp_dir.name}@{run_dir.name}"
            status, why = _read_original_status(path)
            if status is None:
                warnings.append(f"{path}: {why}; {gid} starts as a new run")
            else:
                statuses[gid] = status
    return OriginalStatuses(statuses, warnings)


def _read_original_status(path: Path) -> tuple[str | None, str]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"holds a {type(data).__name__}, not an object"
    raw = data.get("status")
    if raw not in ORIGINAL_STATUS:
        return None, f"has status {raw!r}, not one of {', '.join(ORIGINAL_STATUS)}"
    return ORIGINAL_STATUS[raw], ""


__all__ = [
    "LAYOUT_VERSION", "LiveNode", "MigrationReport", "OriginalStatuses", "ORIGINAL_STATUS", "WorkDirMigrationError",
    "live_nodes_in_store", "mark_current_layout", "migrate_work_dir", "needs_migration", "original_run_statuses",
]
