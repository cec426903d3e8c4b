"""`serve` as a child subreaper: orphaned run processes of local nodes are reparented to it,
where they can be found, and the ones that died are reaped so no zombies pile up."""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from juqueue.process_group import read_stat

log = logging.getLogger("juqueue.server")

PR_SET_CHILD_SUBREAPER = 36
# our own children (broker, beat, Flower, workers) are waited for by whoever started them
_OWN_CHILDREN = ("python", "valkey", "celery")


def become_subreaper() -> None:
    """Orphaned run processes of local nodes are reparented here, where they can be found."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        log.debug("prctl(PR_SET_CHILD_SUBREAPER) not available")


def reap_orphans() -> None:
    """As subreaper we inherit orphans; reap the ones that died (zombies not started by us)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, fields = read_stat(int(entry.name))
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == me and state == "Z" and not comm.startswith(_OWN_CHILDREN):
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass
