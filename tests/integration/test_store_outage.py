"""The store goes away while runs start and end: nothing is lost, nothing is decided twice.

A real `juqueue serve` (embedded broker, a local cluster of 2 nodes x 4 slots) runs short
commands, some of which fail. While they flow, the store refuses the controller:

* PostgreSQL (a database of this test's own on the shared server): the controller's
  connections are terminated a few times, then connections to the database are refused for
  a few seconds (terminated and `ALLOW_CONNECTIONS false`), then allowed again.
* SQLite (the default store in the work dir): the write-ahead log is made immutable
  (`chattr +i`; root ignores file modes) for a few seconds, so every commit fails with a
  disk I/O error while reads go on; without that capability an exclusive lock is held
  past the store's 30 s busy timeout instead.

Meanwhile `/api/status` is polled as the dashboard does; it must keep answering and show
`store_error`. Afterwards every run has ended exactly once, with the status its exit code
gives, decided by exactly one attempt, and nothing is left assigned or running.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from helpers import Server, write_defs
from juqueue.paths import WorkDir


CLUSTER = """
local:
  type: local
  num_slots: 4
  max_jobs: 2
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 60
"""

N_RUNS = 36
FINAL_KINDS = {"completed", "failed", "cancelled"}


def _exit_code(i: int) -> int:
    return 3 if i % 5 == 4 else 0  # every fifth run fails


def _experiment() -> str:
    lines = ["experiment: outage", "cluster: local", "runs:"]
    for i in range(N_RUNS):
        sleep = 0.5 + (i % 4) * 0.4  # 0.5 .. 1.7 s: runs start and end all through the outage
        lines.append(f'  - {{id: r{i:02d}, cmd: ["sh", "-c", "sleep {sleep:.1f}; exit {_exit_code(i)}"], max_retries: 0}}')
    return "\n".join(lines) + "\n"


def _expected() -> dict[str, int]:
    return {f"outage@r{i:02d}": _exit_code(i) for i in range(N_RUNS)}


@dataclass
class StatusPoller:
    """Polls `/api/status` in a thread, as the dashboard does, and keeps what it saw."""

    server: Server
    samples: list[tuple[float, float, int | None, str | None, bool]] = field(default_factory=list)  # asked, answered, HTTP code, store_error, counts null
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "StatusPoller":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(40)

    def _poll(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            try:
                resp = self.server.api("GET", "/api/status")
                body = resp.json() if resp.status_code == 200 else {}
                self.samples.append((t, time.time(), resp.status_code, body.get("store_error"), body.get("counts", {}) is None))
            except (httpx.HTTPError, ValueError):
                self.samples.append((t, time.time(), None, None, False))
            self._stop.wait(0.2)

    def store_error_window(self, since: float = 0.0) -> tuple[float, float, str] | None:
        """When store_error was first and last shown (answer times, answers to requests made
        after `since`), and its first text."""
        shown = [(answered, err) for asked, answered, _code, err, _null in self.samples if err and asked >= since]
        if not shown:
            return None
        return shown[0][0], shown[-1][0], shown[0][1]

    def counts_null(self) -> int:
        return sum(1 for s in self.samples if s[4])

    def slowest(self) -> float:
        return max((answered - asked for asked, answered, *_ in self.samples), default=0.0)

    def failures(self) -> list[tuple]:
        return [s for s in self.samples if s[2] != 200]


def _wait_running(server: Server, n: int = 2, timeout: float = 90) -> None:
    server.wait_for(lambda runs: sum(r["status"] == "running" for r in runs) >= n, timeout, f"{n} runs running")


def _check_outcomes(server: Server, db_url: str) -> list[dict]:
    """Every run ended once, with the status its exit code gives, decided by one attempt."""
    runs = server.wait_all_final(timeout=180)
    expected = _expected()
    by_gid = {r["global_id"]: r for r in runs}
    assert set(by_gid) == set(expected), sorted(set(by_gid) ^ set(expected))
    wrong = {g: (r["status"], r["exit_code"]) for g, r in by_gid.items()
             if (r["status"], r["exit_code"]) != ("completed" if expected[g] == 0 else "failed", expected[g])}
    assert not wrong, f"runs ended with the wrong status or exit code: {wrong}"
    # The CLI's view is the same.
    cli_runs = {r["global_id"]: r["status"] for r in json.loads(server.cli("runs", "--json").stdout)}
    assert cli_runs == {g: r["status"] for g, r in by_gid.items()}
    status = server.api("GET", "/api/status").json()
    assert status["store_error"] is None, status["store_error"]
    assert status["counts"]["assigned"] == 0 and status["counts"]["running"] == 0 and status["counts"]["queued"] == 0, status["counts"]
    assert status["counts"]["completed"] + status["counts"]["failed"] == N_RUNS, status["counts"]
    for gid, want in expected.items():
        detail = server.run(gid)
        kinds = [e["kind"] for e in detail["events"]]
        decided = [k for k in kinds if k in FINAL_KINDS]
        assert decided == ["completed" if want == 0 else "failed"], f"{gid}: decided {decided}; events {kinds}"
        assert kinds[-1] == decided[0], f"{gid}: events after the decision: {kinds}"
        attempts = detail["attempts"]
        assert attempts and all(a["ended_at"] is not None for a in attempts), f"{gid}: an attempt never ended: {attempts}"
        exited = [a for a in attempts if a["end_reason"] == "exited"]
        assert len(exited) == 1, f"{gid}: {len(exited)} attempts decided it: {attempts}"
        assert exited[0]["number"] == detail["attempt"] == len(attempts), f"{gid}: attempts {attempts}"
        assert exited[0]["exit_code"] == want
        assert kinds.count("assigned") == len(attempts), f"{gid}: {kinds} vs {len(attempts)} attempts"
        assert kinds.count("running") <= len(attempts), f"{gid}: started twice: {kinds}"
    # The store itself, not only the API: one decision per run, no attempt left open.
    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as conn:
            decisions = conn.execute(sqlalchemy.text(
                "select global_id, count(*) from events where kind in ('completed', 'failed', 'cancelled') group by global_id"
            )).all()
            open_attempts = conn.execute(sqlalchemy.text("select global_id, number from attempts where ended_at is null")).all()
            live_runs = conn.execute(sqlalchemy.text("select global_id, status from runs where status in ('queued', 'assigned', 'running')")).all()
    finally:
        engine.dispose()
    assert dict(decisions) == {g: 1 for g in expected}, [d for d in decisions if d[1] != 1]
    assert open_attempts == [] and live_runs == []
    return runs


# ================================================================ PostgreSQL
@pytest.fixture
def own_database(postgres_databases):
    url = postgres_databases.new("juqueue_outage")
    yield postgres_databases.admin, url.rsplit("/", 1)[1], url


def _terminate(admin, name: str) -> int:
    rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                         (name,)).fetchall()
    return len(rows)


def _terminate_burst(admin, name: str, seconds: float = 0.3) -> int:
    """Terminate the database's connections over and over for a moment, so that some die in
    the middle of a transaction (between transactions the pool's pre-ping hides a kill)."""
    killed, until = 0, time.time() + seconds
    while time.time() < until:
        killed += _terminate(admin, name)
        time.sleep(0.01)
    return killed


def _report(what: str, poller: StatusPoller, start: float, end: float, runs: list[dict], log: str) -> None:
    window = poller.store_error_window(since=start - 1)
    ended = sum(1 for r in runs if r["ended_at"] and start <= r["ended_at"] <= end)
    print(f"\n{what}: {end - start:.1f} s; {ended} runs exited meanwhile; /api/status: {len(poller.samples)} answers, "
          f"{len(poller.failures())} not 200, {poller.counts_null()} with counts null, slowest {poller.slowest():.1f} s")
    if window:
        print(f"store_error shown from +{window[0] - start:.1f} s to +{window[1] - start:.1f} s: {window[2]!r}")
    print("\n".join(line[:200] for line in log.splitlines() if "store unavailable" in line or "store available again" in line))


@pytest.mark.slow(45)
@pytest.mark.timeout(400)
def test_postgresql_connections_killed_and_refused_while_runs_flow(workspace, own_database):
    admin, name, url = own_database
    defs = write_defs(workspace / "defs", CLUSTER, {"outage.yaml": _experiment()})
    server = Server(defs, workspace / "work", "--db-url", url)
    server.start()
    try:
        with StatusPoller(server) as poller:
            _wait_running(server)
            killed = []
            for _ in range(3):  # the controller's connections killed, 1 s apart
                killed.append(_terminate_burst(admin, name))
                time.sleep(1.0)
            # Then a real outage: the database refuses connections for a while.
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            outage_start = time.time()
            killed.append(_terminate(admin, name))
            try:
                time.sleep(1.5)
                cli = server.cli("status", check=False)  # the CLI says so, and still answers
                time.sleep(max(0.0, 4.0 - (time.time() - outage_start)))
            finally:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            outage_end = time.time()
            assert cli.returncode == 0, cli.stdout + cli.stderr
            assert "store unavailable:" in cli.stdout, cli.stdout
            runs = _check_outcomes(server, url)
        print(f"\nconnections killed per round: {killed}")
        _report("database refusing connections", poller, outage_start, outage_end, runs, server.log.read_text())
        window = poller.store_error_window(since=outage_start)
        assert window is not None, "store_error was never shown while the database refused connections"
        assert "store unavailable" in window[2]
        assert poller.counts_null() > 0, "the store was unreadable, yet /api/status always had counts"
        assert not poller.failures(), f"/api/status failed: {poller.failures()[:5]}"
        assert len(runs) == N_RUNS
        assert server.proc is not None and server.proc.poll() is None, "serve died"
    finally:
        server.stop()


# ================================================================ SQLite
def _can_make_immutable(probe: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    probe.write_text("x")
    try:
        ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["chattr", "-i", str(probe)], check=True)
        return ok
    finally:
        probe.unlink(missing_ok=True)


class SqliteOutage:
    """Commits to the work dir's SQLite store fail for a while; reads go on."""

    def __init__(self, db: Path, seconds: float) -> None:
        self.db, self.seconds = db, seconds
        self.immutable = _can_make_immutable(db.parent / "chattr-probe")
        self.wal = Path(f"{db}-wal")
        self.lock: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.immutable:
            # Only the log: the shared-memory index (-shm) is mapped, and an immutable mapping
            # would crash the server (SIGBUS) rather than fail its commits.
            assert self.wal.exists(), "the store is not in WAL mode"
            subprocess.run(["chattr", "+i", str(self.wal)], check=True)
        else:  # past the store's 30 s busy timeout
            self.seconds = max(self.seconds, 40)
            self.lock = sqlite3.connect(self.db, timeout=60, isolation_level=None)
            self.lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.immutable:
            subprocess.run(["chattr", "-i", str(self.wal)], check=False)
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None


@pytest.mark.slow(40)
@pytest.mark.timeout(400)
def test_sqlite_commits_refused_while_runs_flow(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, {"outage.yaml": _experiment()})
    work = workspace / "work"
    server = Server(defs, work).start()
    db = WorkDir(work).db_file
    outage = SqliteOutage(db, seconds=5.0)
    try:
        with StatusPoller(server) as poller:
            _wait_running(server)
            outage.begin()
            outage_start = time.time()
            try:
                time.sleep(outage.seconds)
            finally:
                outage.end()
            outage_end = time.time()
            runs = _check_outcomes(server, f"sqlite:///{db}")
        how = "chattr +i on the WAL" if outage.immutable else "an exclusive lock"
        _report(f"commits refused ({how})", poller, outage_start, outage_end, runs, server.log.read_text())
        seen = poller.store_error_window(since=outage_start)
        assert seen is not None, "/api/status never showed store_error: did the commits really fail?"
        assert "store unavailable" in seen[2]
        if outage.immutable:  # the commits fail at once; /api/status always answered
            assert seen[0] < outage_end, "store_error only shown after the outage"
            assert not poller.failures(), f"/api/status failed: {poller.failures()[:5]}"
        # (under the lock a commit waits out the store's 30 s busy timeout on the controller
        # thread, so a status request may time out meanwhile)
        assert len(runs) == N_RUNS
        assert server.proc is not None and server.proc.poll() is None, "serve died"
        log = server.log.read_text()
        assert "store available again" in log.split("store unavailable", 1)[-1]
    finally:
        outage.end()
        server.stop()
