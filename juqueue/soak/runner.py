"""One soak from start to verdict: definitions written, `serve` started with short timings, a
live-feed client connected, the seeded schedule of faults carried out, every run waited for,
`stop --cancel-jobs`, what outlived it recorded, and the evidence written for the checker.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from juqueue.soak.actions import UserActions
from juqueue.soak.diskfill import DiskFull
from juqueue.soak.faults import ProcessFaults, processes_under
from juqueue.soak.feed_reader import FeedReader
from juqueue.soak.schedule import DISK_PHASES, make_schedule
from juqueue.soak.server import SoakServer
from juqueue.soak.workload import EXPERIMENT, Workload

log = logging.getLogger("juqueue.soak")
FINAL = {"completed", "failed", "cancelled"}
TOP_UP_BELOW = 4  # non-final runs under which the soak adds a wave before its next fault


@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    seed: int
    soak_dir: Path
    slurm: bool = False
    partition: str = "debug"
    disk: bool = True
    heartbeat_timeout_s: float = 6.0
    lease_ttl_s: float = 12.0
    final_wait_s: float = 300.0

    def serve_flags(self) -> list[str]:
        return ["--tick-interval", "1", "--heartbeat-interval", "1", "--heartbeat-timeout", str(self.heartbeat_timeout_s),
                "--lease-ttl", str(self.lease_ttl_s), "--start-timeout", "60", "--stop-escalate", "15",
                "--log-level", "INFO"]


class Soak:
    def __init__(self, opts: SoakOptions) -> None:
        self.opts = opts
        d = opts.soak_dir
        self.def_dir, self.journal_dir, self.work_dir = d / "defs", d / "journals", d / "work"
        for path in (self.def_dir, self.journal_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(opts.seed)
        self.workload = Workload(self.journal_dir, slurm=opts.slurm, partition=opts.partition, rng=random.Random(opts.seed + 1),
                                 job_name=f"soak{opts.seed}")
        self.disk = DiskFull(self.work_dir, self.work_dir / EXPERIMENT)
        self.server = SoakServer(self.def_dir, self.work_dir, d / "serve.log", opts.serve_flags())
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.errors: list[str] = []

    def _record(self, kind: str, detail: str | None, t0: float, began: float | None = None) -> None:
        began = time.time() if began is None else began
        entry = {"t": began, "at": round(began - t0, 2), "took": round(time.time() - began, 2), "kind": kind, "detail": detail}
        with open(self.opts.soak_dir / "faults.jsonl", "a") as out:
            out.write(json.dumps(entry) + "\n")
        log.info("%7.1f s  %-20s %s", entry["at"], kind, detail if detail is not None else "(nothing to hit)")

    def _disk_phase(self, kind: str) -> str | None:
        if self.disk.reason is not None:
            return None
        whole = kind == DISK_PHASES[1]
        hold = self.opts.lease_ttl_s + 5 if whole else 10.0
        detail = self.disk.fill(whole_work_dir=whole)
        time.sleep(hold)
        self.disk.free()
        return f"{detail}; held {hold:.0f} s, freed"

    def run(self) -> int:
        opts = self.opts
        if opts.disk and not self.disk.mount():
            log.warning("disk-full phases skipped: %s", self.disk.reason)
        elif not opts.disk:
            self.disk.reason = "--no-disk"
        self.workload.add_wave(16)
        self.workload.write_definitions(self.def_dir)
        schedule = make_schedule(opts.seed, opts.minutes * 60, slurm=opts.slurm, disk=self.disk.reason is None)
        self.server.start()
        feed = FeedReader(self.server, opts.soak_dir / "feed.json").start()
        procs = ProcessFaults(self.server, self.rng, opts.heartbeat_timeout_s, opts.lease_ttl_s)
        users = UserActions(self.server, self.workload, self.def_dir, opts.soak_dir / "verbs.jsonl", self.rng)
        injectors = {**procs.injectors(), **users.injectors(), **{k: (lambda k=k: self._disk_phase(k)) for k in DISK_PHASES}}
        t0 = time.time()
        leftovers: dict = {}
        try:
            for fault in schedule:
                time.sleep(max(0.0, t0 + fault.at - time.time()))
                self._top_up(users, t0)
                began = time.time()
                try:
                    detail = injectors[fault.kind]()
                except (httpx.HTTPError, OSError, RuntimeError) as exc:
                    detail = f"error: {exc}"
                    self.errors.append(f"{fault.kind}: {exc}")
                (self.injected if detail is not None else self.skipped)[fault.kind] += 1
                self._record(fault.kind, detail, t0, began)
            procs.continue_all()
            self._settle(users, t0)
            time.sleep(3)  # the feed's last deltas
        finally:
            procs.continue_all()
            feed.stop()
            leftovers = self._stop_everything()
            self._write_meta(leftovers)
            if self.disk.mounted:
                self.disk.keep_copy(opts.soak_dir / "work-copy")
                self.disk.unmount()
        return 0

    def _top_up(self, users: UserActions, t0: float) -> None:
        """More runs when few are left, so the faults always hit a busy system."""
        try:
            resp = self.server.api("GET", "/api/status")
            counts = resp.json().get("counts") or {} if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return
        if counts and sum(counts.get(k, 0) for k in ("queued", "assigned", "running", "held")) < TOP_UP_BELOW:
            began = time.time()
            try:
                self._record("top_up", users.add_runs(), t0, began)
            except (httpx.HTTPError, OSError) as exc:
                self._record("top_up", f"error: {exc}", t0, began)

    def _settle(self, users: UserActions, t0: float) -> None:
        """Release what is held, then wait (bounded) until every run is final."""
        deadline = time.time() + self.opts.final_wait_s + self.opts.minutes * 20
        released = False
        while time.time() < deadline:
            try:
                if not released:
                    self._record("release_held", f"released {users.release_all_held()}", t0)
                    released = True
                runs = self.server.runs()
                if runs and all(r["status"] in FINAL for r in runs):
                    self._record("all_final", f"{len(runs)} runs final", t0)
                    return
            except (httpx.HTTPError, RuntimeError) as exc:
                log.warning("final wait: %s", exc)
            time.sleep(2)
        self._record("final_wait_timeout", "not every run became final in time", t0)

    def _stop_everything(self) -> dict:
        rc = self.server.stop(cancel_jobs=True)
        hung = rc is None and self.server.proc is not None
        deadline = time.time() + 30
        left = processes_under(self.work_dir)
        while left and time.time() < deadline:
            time.sleep(1)
            left = processes_under(self.work_dir)
        jobs: list[str] = []
        if self.opts.slurm:
            out = subprocess.run(["squeue", "--me", "-h", "-o", "%i %j %T"], capture_output=True, text=True, timeout=30).stdout
            jobs = [line for line in out.splitlines() if f" {self.workload.job_name}" in line]
        for pid, _cmd in left:  # the verdict names them; the machine is not left with them
            subprocess.run(["kill", "-9", str(pid)], capture_output=True)
        return {"processes": left, "jobs": jobs, "stop_rc": rc, "stop_hung": hung}

    def _write_meta(self, leftovers: dict) -> None:
        d = self.opts.soak_dir
        (d / "leftovers.json").write_text(json.dumps(leftovers, indent=1))
        store_dir = d / "work-copy" if self.disk.mounted else self.work_dir
        meta = {"seed": self.opts.seed, "minutes": self.opts.minutes, "slurm": self.opts.slurm,
                "store_work_dir": str(store_dir), "expected_exit": self.workload.expected_exit(),
                "injected": dict(self.injected), "nothing_to_hit": dict(self.skipped), "injector_errors": self.errors,
                "disk_phases": self.disk.reason or "run", "serve_starts": self.server.starts}
        (d / "soak.json").write_text(json.dumps(meta, indent=1))
