"""The watcher beside the embedded broker: ends it once no server and no job needs it.

`python -m juqueue.broker.watcher --work-dir W`, started by `serve` in its own session so it
outlives `serve` like the broker does. One per work dir (an flock in the broker's directory).
Every few seconds it reads the ledger (`juqueue.broker.lifetime`) and asks who still lives: the
server by pid, local workers by pid, SLURM jobs in one `squeue` call (a failing `squeue` counts
as alive: never end a broker a job may still need). Unused for the grace, the broker is shut
down with SHUTDOWN (the AOF is flushed and kept, so a later `serve` starts from it). The watcher
also ends when the broker is gone and no server runs (nothing left to watch).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from juqueue.broker.lifetime import Ledger, ProcessRef, check_interval, decide, read_ledger
from juqueue.file_lock import acquire_flock, release_flock
from juqueue.paths import WorkDir, read_json
from juqueue.process_group import process_start_time
from juqueue.processes import pid_alive

log = logging.getLogger("juqueue.broker.watcher")

LOCK_NAME = "watcher.lock"
LOG_NAME = "watcher.log"


class _Held(Exception):
    pass


def process_lives(ref: ProcessRef | None) -> bool:
    """The very process named (a reused pid with another start time is not it)."""
    if ref is None or not pid_alive(ref.pid, zombie_is_dead=True):
        return False
    return ref.start_time is None or process_start_time(ref.pid) == ref.start_time


def slurm_jobs_alive(job_ids: list[str]) -> set[str]:
    """The job ids of `job_ids` that SLURM still shows as not ended; all of them when squeue fails."""
    if not job_ids:
        return set()
    from juqueue.backends.slurm_commands import SlurmCommandError, list_jobs
    from juqueue.backends.slurm_parse import job_is_gone

    try:
        jobs = {j.job_id: j for j in list_jobs("")}
    except (SlurmCommandError, OSError) as exc:
        log.warning("squeue failed (%s): the jobs count as alive", exc)
        return set(job_ids)
    return {j for j in job_ids if j in jobs and not job_is_gone(jobs[j].state)}


def in_use(ledger: Ledger) -> tuple[bool, str]:
    """Whether the server or a node of the ledger lives, and who (for the log)."""
    if process_lives(ledger.server):
        return True, "the server"
    for n in ledger.nodes:
        if n.backend != "slurm" and n.pid is not None and process_lives(ProcessRef(n.pid, n.start_time)):
            return True, f"local node {n.node}"
    slurm = [n.job_id for n in ledger.nodes if n.backend == "slurm" and n.job_id]
    alive = slurm_jobs_alive(slurm)
    if alive:
        return True, f"SLURM job(s) {', '.join(sorted(alive))}"
    return False, ""


class Watcher:
    """One work dir's broker, looked at every `check_interval(grace)` seconds."""

    def __init__(self, work: WorkDir) -> None:
        self.work = work
        self.idle_since: float | None = None
        self.last_reason = ""

    def _client(self) -> redis.Redis | None:
        state = read_json(self.work.broker_dir / "broker.json") or {}
        if not state.get("port") or not state.get("password"):
            return None
        return redis.Redis(host="127.0.0.1", port=int(state["port"]), password=state["password"],
                           socket_timeout=5, socket_connect_timeout=5)

    def broker_answers(self) -> bool:
        client = self._client()
        try:
            return client is not None and bool(client.ping())
        except redis.RedisError:
            return False

    def shutdown_broker(self) -> None:
        client = self._client()
        try:
            if client is not None:
                client.shutdown()  # flushes the AOF; with no save points, no RDB is written
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection: that is the answer
        except redis.RedisError as exc:
            log.warning("SHUTDOWN refused (%s): SIGTERM to the broker", exc)
            pid = (read_json(self.work.broker_dir / "broker.json") or {}).get("pid")
            if pid and _is_our_broker(int(pid), self.work):
                os.kill(int(pid), signal.SIGTERM)

    def step(self, now: float) -> bool:
        """One look; True when the watcher is done (the broker ended, or is gone with no server)."""
        ledger = read_ledger(self.work)
        used, who = in_use(ledger)
        if not self.broker_answers() and not process_lives(ledger.server):
            log.info("the broker does not answer and no server runs: nothing left to watch")
            return True
        if who != self.last_reason:
            log.info("in use by %s" % who if used else "nothing uses the broker: it ends after %g s" % ledger.grace_s)
            self.last_reason = who
        self.idle_since, expire = decide(used, self.idle_since, now, ledger.grace_s)
        if not expire:
            return False
        if process_lives(read_ledger(self.work).server):  # a `serve` adopted it just now
            self.idle_since = None
            return False
        log.info("no server and no live job for %g s: shutting the broker down (its AOF is kept)", ledger.grace_s)
        self.shutdown_broker()
        return True

    def run(self) -> None:
        while not self.step(time.time()):
            time.sleep(check_interval(read_ledger(self.work).grace_s))


def _is_our_broker(pid: int, work: WorkDir) -> bool:
    try:
        return str(work.broker_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _lock(work: WorkDir, tries: int = 20):
    for _ in range(tries):
        try:
            return acquire_flock(work.broker_dir / LOCK_NAME, lambda holder: _Held(holder))
        except _Held:
            time.sleep(0.1)
    return None


def watcher_needed(work: WorkDir) -> bool:
    """True when no watcher holds the lock (probed: taken and given back at once)."""
    try:
        fh = acquire_flock(work.broker_dir / LOCK_NAME, lambda holder: _Held(holder), record_holder=False)
    except _Held:
        return False
    release_flock(fh)
    return True


def ensure_watcher(work: WorkDir) -> subprocess.Popen | None:
    """Start the work dir's watcher unless one runs; it outlives this process on purpose."""
    if not watcher_needed(work):
        return None
    with open(work.broker_dir / LOG_NAME, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "juqueue.broker.watcher", "--work-dir", str(work.root)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=work.broker_dir)


def stop_watcher(work: WorkDir) -> None:
    """SIGTERM the work dir's watcher (named in its lock file), when its broker was stopped on purpose."""
    try:
        holder = (work.broker_dir / LOCK_NAME).read_text()
    except OSError:
        return
    pid = next((int(p[4:]) for p in holder.split() if p.startswith("pid=") and p[4:].isdigit()), None)
    if pid is None or pid == os.getpid():
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"juqueue.broker.watcher" in cmdline and str(work.root).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juqueue.broker.watcher")
    parser.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = WorkDir(args.work_dir.resolve())
    lock = _lock(work)
    if lock is None:
        return 0  # another watcher holds this broker
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        Watcher(work).run()
    finally:
        release_flock(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
