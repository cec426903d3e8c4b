"""The work dir's layout, in one place.

The work dir must be on a file system the compute nodes share: runs write logs and
checkpoints under it, and attempts write their exit files there.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


STATE_DIR_NAME = ".juqueue"  # an experiment name can never start with "." (definitions/validation.py)


@dataclass(frozen=True)
class WorkDir:
    """`W/<experiment>/<run>/` are the runs' directories (the original JuQueue's layout);
    everything JuQueue keeps for itself is under `W/.juqueue/`, so no experiment name
    collides with it."""

    root: Path

    @property
    def state_dir(self) -> Path:
        """`W/.juqueue`: store, token, broker, nodes, the server's logs and lock (mode 0700)."""
        return self.root / STATE_DIR_NAME

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "juqueue.lock"

    @property
    def layout_file(self) -> Path:
        """Written once the work dir is in this layout (new, or migrated): see juqueue.workdir."""
        return self.state_dir / "layout"

    @property
    def server_file(self) -> Path:
        """Where the running `serve` is reachable (URL or Unix socket), its pid and host."""
        return self.state_dir / "server.json"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "token"

    @property
    def broker_dir(self) -> Path:
        return self.state_dir / "broker"

    @property
    def broker_url_file(self) -> Path:
        """0600 file that jobs, workers, Flower and `celery inspect` read the broker URL from."""
        return self.broker_dir / "url"

    @property
    def db_file(self) -> Path:
        return self.state_dir / "juqueue.db"

    @property
    def nodes_dir(self) -> Path:
        return self.state_dir / "nodes"

    def node_dir(self, node: str) -> Path:
        return self.nodes_dir / node

    @property
    def beat_log(self) -> Path:
        return self.state_dir / "beat.log"

    @property
    def beat_schedule(self) -> Path:
        return self.state_dir / "beat-schedule"

    @property
    def flower_log(self) -> Path:
        return self.state_dir / "flower.log"

    def experiment_dir(self, experiment: str) -> Path:
        return self.root / experiment

    def run_dir(self, experiment: str, run_id: str) -> Path:
        return self.experiment_dir(experiment) / run_id

    def log_dir(self, experiment: str, run_id: str) -> Path:
        return self.run_dir(experiment, run_id) / "logs"

    def exit_file(self, experiment: str, run_id: str, attempt: int) -> Path:
        """Written by the worker when an attempt ends: an exit event lost with Redis is not a lost result."""
        return self.log_dir(experiment, run_id) / f"attempt-{attempt}.exit.json"

    def checkpoint_file(self, experiment: str, run_id: str, attempt: int) -> Path:
        """$JUQUEUE_CHECKPOINT_FILE: the run touches it when it has checkpointed; its worker reports the mtime."""
        return self.log_dir(experiment, run_id) / f"attempt-{attempt}.checkpoint"

    def attempt_log(self, experiment: str, run_id: str, attempt: int, stream: str) -> Path:
        return self.log_dir(experiment, run_id) / f"attempt-{attempt}.{stream}"

    def ensure_state_dir(self) -> Path:
        """Create `W/.juqueue` (0700: the store and logs hold commands and environments)."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.state_dir


@dataclass(frozen=True)
class LegacyWorkDir:
    """The layout of JuQueue releases before `W/.juqueue` (read by the migration, juqueue.workdir,
    and by the simulator looking for a store): JuQueue's own files at the top of the work dir and
    the runs under `W/runs/`."""

    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / "juqueue.lock"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def db_file(self) -> Path:
        return self.root / "juqueue.db"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    def moves(self, new: WorkDir) -> list[tuple[Path, Path]]:
        """Every file or directory of JuQueue's own (not the runs), old place -> new place."""
        pairs = [(self.root / name, new.state_dir / name) for name in ("token", "broker", "nodes", "beat.log", "flower.log")]
        # Celery beat's shelve: one file or several (`.db`, `.dat`, `.dir`, `.bak`), by dbm backend.
        pairs += [(p, new.state_dir / p.name) for p in sorted(self.root.glob("beat-schedule*")) if p.is_file()]
        # The store with its journal files; the journals first, so a store is never moved without them.
        db = [(self.root / f"juqueue.db{suffix}", new.state_dir / f"juqueue.db{suffix}") for suffix in ("-wal", "-shm", "-journal", "")]
        return pairs + db

    @property
    def stale_files(self) -> list[Path]:
        """Files that mean nothing once no old `serve` runs: removed, not moved."""
        return [self.root / "server.json", self.lock_file]

    def markers(self) -> list[Path]:
        """Files only that layout has at the top (experiments are directories): any one present
        means the work dir is in it."""
        return [self.root / "token", self.db_file, self.lock_file, self.root / "server.json", self.broker_dir / "broker.json",
                self.broker_dir / "url"]


@dataclass(frozen=True)
class OriginalWorkDir:
    """What the original JuQueue (0.0.15) kept in a work dir: each run's status file in its
    directory `W/<experiment>/<run>/juqueue-run.json` (read by juqueue.original_statuses), its own
    lock `W/.lock` (juqueue.workdir refuses to run while it is held) and logs `W/logs/`."""

    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def run_status_file(self, experiment: str, run_id: str) -> Path:
        return self.root / experiment / run_id / "juqueue-run.json"


def split_global_id(global_id: str) -> tuple[str, str]:
    experiment, _, run_id = global_id.partition("@")
    return experiment, run_id


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write to a temp file beside `path` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: Path, obj: object, mode: int = 0o644) -> None:
    write_atomic(path, json.dumps(obj), mode)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
