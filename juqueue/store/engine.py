"""Opening the store: SQLite in the work dir by default, PostgreSQL by URL.

SQLite's WAL needs a shared-memory index that NFS, GPFS and Lustre do not give reliably,
so the journal mode follows the file system the database lives on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from juqueue.paths import WorkDir
from juqueue.store.migrations import prepare_schema

log = logging.getLogger(__name__)

NETWORK_FILE_SYSTEMS = {"nfs", "nfs4", "gpfs", "lustre", "cifs", "smb3", "beegfs", "fuse.sshfs", "ceph", "panfs", "9p"}


def file_system_type(path: Path) -> str:
    """The type of the mount holding `path`, from /proc/mounts (longest matching mount point)."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                    best, best_type = mount, parts[2]
    except OSError:
        pass
    return best_type


def sqlite_journal_mode(path: Path) -> str:
    return "DELETE" if file_system_type(path.parent) in NETWORK_FILE_SYSTEMS else "WAL"


def make_engine(db_url: str | None, work_root: Path) -> Engine:
    """Create the engine, and create or upgrade the store's schema; `db_url` None means SQLite in the work dir
    (`W/.juqueue/juqueue.db`).

    Raises StoreSchemaError for a store newer than this code, or an upgrade that failed
    (then rolled back).
    """
    if db_url is None:
        db_path = WorkDir(work_root).db_file
        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        db_url = f"sqlite:///{db_path}"
        mode = sqlite_journal_mode(db_path)
        engine = create_engine(db_url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA journal_mode={mode}")
            cur.execute("PRAGMA synchronous=NORMAL" if mode == "WAL" else "PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        log.info("store: %s (journal %s)", db_path, mode)
        where = str(db_path)
    else:
        engine = create_engine(db_url, pool_pre_ping=True)
        where = engine.url.render_as_string(hide_password=True)
        log.info("store: %s", where)
    try:
        prepare_schema(engine, where)
    except BaseException:
        engine.dispose()
        raise
    return engine
