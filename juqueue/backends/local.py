"""`local` nodes: a worker process group on this machine, started and stopped by the controller."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from juqueue.backends.base import BackendError, NodeLiveness, StartedNode
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.process_group import kill_group, process_start_time
from juqueue.processes import process_command_lines

log = logging.getLogger(__name__)


class LocalBackend:
    kind = "local"
    dies_with_server = True
    loss_confirmed_by_scheduler = False
    exit_settle_s = 0.0  # the controller itself stops local nodes: it knows first

    def __init__(self, work: WorkDir) -> None:
        self.work = work
        self._procs: dict[str, subprocess.Popen] = {}

    def start_node(self, cluster: ClusterSpec, node: str, token: str) -> StartedNode:
        node_dir = self.work.node_dir(node)
        node_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(cluster.env)
        env["JUQUEUE_WORK_DIR"] = str(self.work.root)
        try:
            with open(node_dir / "worker.log", "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "juqueue.workers.node", "--work-dir", str(self.work.root), "--node", node, "--cluster", cluster.name],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, cwd=node_dir,
                )
        except OSError as exc:
            raise BackendError(f"could not start the local worker for {node}: {exc}") from exc
        self._procs[node] = proc
        return StartedNode(pid=proc.pid, billing_from=time.time())

    def recorded_end(self, job_id: str | None) -> float | None:
        return None  # the controller sees the process end itself

    def kill_run_group(self, pid: int, start_time: int | None) -> None:
        kill_group(pid, start_time)

    def stop_node(self, node: str, job_id: str | None, pid: int | None) -> None:
        """Forceful end: the worker's group gets SIGKILL (runs were stopped before, or are killed by pgid)."""
        proc = self._procs.get(node)
        target = proc.pid if proc is not None else pid if pid is not None else self._find_worker(node)
        if target is None:
            return
        try:
            kill_group(target, None)  # the worker leads its group (start_new_session)
        except PermissionError:  # the pid was reused by another user's group: ours is gone
            pass
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                log.warning("local worker %s did not die after SIGKILL", node)

    def _find_worker(self, node: str) -> int | None:
        """The worker of a node whose pid never reached the store (`serve` was killed between
        starting it and the next commit): found by its command line, which names the node."""
        def value(argv: list[str], flag: str) -> str | None:
            return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

        for pid, argv in process_command_lines():
            if "juqueue.workers.node" in argv and value(argv, "--node") == node and value(argv, "--work-dir") == str(self.work.root):
                return pid
        return None

    def liveness(self, nodes: dict[str, tuple[str | None, int | None]]) -> dict[str, NodeLiveness]:
        out: dict[str, NodeLiveness] = {}
        for name, (_job, pid) in nodes.items():
            proc = self._procs.get(name)
            if proc is not None:
                code = proc.poll()
                out[name] = NodeLiveness(alive=code is None, reason="" if code is None else f"worker exited with code {code}")
            elif pid is not None and process_start_time(pid) is not None:
                # A worker of an earlier `serve`: alive, but not ours to keep (local nodes stop with the server).
                out[name] = NodeLiveness(alive=True, reason="left by an earlier serve")
            else:
                out[name] = NodeLiveness(alive=False, reason="worker process gone")
        return out
