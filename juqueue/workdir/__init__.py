"""A work dir of JuQueue releases before `W/.juqueue/` brought into today's layout (see juqueue.paths).

The previous layout kept JuQueue's files at the top of the work dir (`W/token`, `W/juqueue.db`,
`W/broker/`, `W/nodes/`, ...) and the runs under `W/runs/<experiment>/<run>`. `serve` calls
`migrate_work_dir` at start, under the work dir's lock: the refusals (`guards`) are checked before
anything moves, then the files move (`moves`). A work dir of the original JuQueue needs no move;
its runs' statuses are read by juqueue.original_statuses.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from juqueue.errors import WorkDirMigrationError
from juqueue.paths import LegacyWorkDir, WorkDir
from juqueue.workdir.guards import OldLayoutLock, check_experiment_names, refuse_live_nodes, refuse_running_original
from juqueue.workdir.moves import LAYOUT_VERSION, MigrationReport, mark_current_layout, move_into_current_layout, needs_migration

log = logging.getLogger("juqueue.workdir")


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
    refuse_running_original(work)
    if not needs_migration(work):
        mark_current_layout(work)
        return report
    legacy = LegacyWorkDir(work.root)
    work.ensure_state_dir()
    with OldLayoutLock(legacy):
        refuse_live_nodes(work, legacy, db_url, slurm_jobs, pid_is_worker)
        check_experiment_names(work, legacy)
        move_into_current_layout(work, legacy, report)
    report.migrated = True
    log.info("work dir %s: migrated (%d moves)", work.root, len(report.moved))
    return report


__all__ = ["LAYOUT_VERSION", "MigrationReport", "WorkDirMigrationError", "mark_current_layout", "migrate_work_dir",
           "needs_migration"]
