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


@dataclass(frozen=True)
class WorkDir:
    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / "juqueue.lock"

    @property
    def server_file(self) -> Path:
        return self.root / "server.json"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def broker_url_file(self) -> Path:
        """0600 file that jobs, workers, Flower and `celery inspect` read the broker URL from."""
        return self.root / "broker" / "url"

    @property
    def db_file(self) -> Path:
        return self.root / "juqueue.db"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def run_dir(self, experiment: str, run_id: str) -> Path:
        return self.root / "runs" / experiment / run_id

    def log_dir(self, experiment: str, run_id: str) -> Path:
        return self.run_dir(experiment, run_id) / "logs"

    def exit_file(self, experiment: str, run_id: str, attempt: int) -> Path:
        """Written by the worker when an attempt ends: an exit event lost with Redis is not a lost result."""
        return self.log_dir(experiment, run_id) / f"attempt-{attempt}.exit.json"

    def attempt_log(self, experiment: str, run_id: str, attempt: int, stream: str) -> Path:
        return self.log_dir(experiment, run_id) / f"attempt-{attempt}.{stream}"


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
