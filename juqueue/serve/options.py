"""What `juqueue serve` was given: its flags, as the CLI hands them over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServeOptions:
    """What `juqueue serve` was given (the CLI's flags, paths resolved)."""

    def_dir: Path
    work_dir: Path
    broker: str | None = None
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None  # None: 51234, or a free port when that is taken; -1: no TCP port
    unix_socket: Path | None = None  # the API on this Unix socket (mode 0600), TCP only with an explicit --port
    broker_host: str | None = None
    tick_interval: float = 2.0
    log_level: str = "INFO"
    flower_port: int | None = None  # None: no Flower
    hold_new: bool = False  # runs that first appear are held
