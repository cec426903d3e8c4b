"""The work-dir step: the def dir and its clusters.yaml checked (and read, once), the work
dir locked against a second `serve`, migrated from an earlier layout, and its token."""

from __future__ import annotations

import secrets

from juqueue.errors import AlreadyRunningError, ConfigError
from juqueue.file_lock import acquire_flock, release_flock
from juqueue.paths import WorkDir, write_atomic
from juqueue.serve.context import ServeContext
from juqueue.workdir import migrate_work_dir


class WorkDirLock:
    """One controller per work dir: flock, with host and pid inside (flock does not cross
    hosts on every parallel file system, so a human can see who holds it)."""

    def __init__(self, work: WorkDir) -> None:
        self.work = work
        self._fh = None

    def acquire(self) -> None:
        self.work.root.mkdir(parents=True, exist_ok=True)
        self.work.ensure_state_dir()
        self._fh = acquire_flock(self.work.lock_file, lambda holder: AlreadyRunningError(
            f"work dir {self.work.root} is in use by a running JuQueue ({holder}); stop it first"))

    def release(self) -> None:
        if self._fh is not None:
            release_flock(self._fh)
            self._fh = None


def load_or_create_token(work: WorkDir) -> str:
    """The work dir keeps its token across restarts, so dashboard links and clients stay valid."""
    if work.token_file.exists():
        return work.token_file.read_text().strip()
    token = secrets.token_urlsafe(24)
    write_atomic(work.token_file, token + "\n", mode=0o600)
    return token


class WorkDirStep:
    """Reads opts.def_dir, opts.work_dir, opts.db_url (for the migration) and the heartbeat
    defaults of the settings; fills ctx.clusters and ctx.token. Stop releases the lock."""

    name = "workdir"
    requires: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.lock: WorkDirLock | None = None

    def start(self, ctx: ServeContext) -> None:
        from juqueue.definitions.clusters import load_clusters

        if not ctx.def_dir.is_dir():
            raise ConfigError(f"definition directory {ctx.def_dir} does not exist")
        clusters_file = ctx.def_dir / "clusters.yaml"
        if not clusters_file.is_file():
            raise ConfigError(f"{clusters_file} is missing: define at least one cluster there")
        ctx.clusters = load_clusters(clusters_file, ctx.settings.cluster_defaults())
        lock = WorkDirLock(ctx.work)
        lock.acquire()
        self.lock = lock
        try:
            migrate_work_dir(ctx.work, ctx.opts.db_url)  # a work dir of an earlier release: into today's layout first
            ctx.token = load_or_create_token(ctx.work)
        except BaseException:
            self.stop(ctx)  # not started: the runner will not stop it
            raise

    def stop(self, ctx: ServeContext) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
