"""A work dir in the layout before `W/.juqueue/` moved into today's (see juqueue.paths).

Every step is one rename (atomic on one file system), logged, and the whole is idempotent: a
migration cut short goes on at the next `serve`, from where it stopped (`W/runs/` is renamed to
`W/.juqueue/runs-migrating/` first, then emptied experiment by experiment).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from juqueue.errors import WorkDirMigrationError
from juqueue.paths import LegacyWorkDir, WorkDir, read_json, write_atomic

log = logging.getLogger("juqueue.workdir")

LAYOUT_VERSION = "2"  # 1: everything at the top of W, runs under W/runs/; 2: W/<experiment>/<run>, W/.juqueue/
RUNS_IN_TRANSIT = "runs-migrating"  # W/runs/ is renamed to W/.juqueue/runs-migrating/ first, then emptied


@dataclass
class MigrationReport:
    """What `migrate_work_dir` did; `moved` lists (from, to) in order."""

    migrated: bool = False
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


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


def move_into_current_layout(work: WorkDir, legacy: LegacyWorkDir, report: MigrationReport) -> None:
    """Every move, in order, then the mark. Call it only once the guards let it run (under the
    old layout's lock): the files move under anything that still uses the old paths."""
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


__all__ = ["LAYOUT_VERSION", "RUNS_IN_TRANSIT", "MigrationReport", "mark_current_layout", "move_into_current_layout",
           "needs_migration"]
