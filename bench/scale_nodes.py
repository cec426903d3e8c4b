"""1,000 nodes for bench/scale.py (part `nodes`): a backend registered by this module (type `simnode`) whose
nodes are simulated, up to 250 per process and at most 4 processes, speaking the real worker protocol on the
real broker: heartbeats (`Event` on the stream, with the version and the attempts held, leases renewed), the
node's Celery queue (kombu's Redis list) read, each attempt claimed (`Leases.claim`, the same Lua), `started`
and, at once, `exited` 0 with the lease released in one pipeline (a trivial run), control commands (shutdown).

Imported by `serve` through `JUQUEUE_BACKENDS=scale_nodes` (bench/ on PYTHONPATH): importing registers the
backend. `python scale_nodes.py --sim WORK_DIR BROKER_URL` is one simulator process (commands on stdin:
`start NODE`, `stop NODE`)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from juqueue.backends.base import NodeLiveness, StartedNode
from juqueue.backends.registry import register_backend
from juqueue.paths import WorkDir

PER_PROCESS, MAX_PROCESSES = 250, 4
KIND = "simnode"
ENV = "JUQUEUE_BACKENDS"


class SimNodeBackend:
    """Nodes as entries of at most 4 simulator processes (they die with serve)."""

    kind = KIND
    dies_with_server = True
    loss_confirmed_by_scheduler = False
    exit_settle_s = 0.0

    def __init__(self, work: WorkDir) -> None:
        self.work = work
        self._procs: list[subprocess.Popen] = []
        self._where: dict[str, int] = {}  # node -> process index
        self._lock = threading.Lock()

    def _process_for_new_node(self) -> int:
        counts = [sum(1 for i in self._where.values() if i == k) for k in range(len(self._procs))]
        for k, n in enumerate(counts):
            if n < PER_PROCESS and self._procs[k].poll() is None:
                return k
        if len(self._procs) >= MAX_PROCESSES:
            raise RuntimeError(f"at most {MAX_PROCESSES * PER_PROCESS} simulated nodes")
        url = self.work.broker_url_file.read_text().strip()
        log = open(self.work.state_dir / f"simnodes-{len(self._procs)}.log", "ab")
        self._procs.append(subprocess.Popen([sys.executable, __file__, "--sim", str(self.work.root), url],
                                            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True))
        return len(self._procs) - 1

    def _send(self, k: int, line: str) -> None:
        proc = self._procs[k]
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def start_node(self, cluster, node: str, token: str) -> StartedNode:  # type: ignore[no-untyped-def]
        with self._lock:
            k = self._process_for_new_node()
            self._where[node] = k
            self._send(k, f"start {node}")
        return StartedNode(billing_from=time.time())

    def stop_node(self, node: str, job_id: str | None, pid: int | None) -> None:
        with self._lock:
            k = self._where.pop(node, None)
            if k is not None:
                self._send(k, f"stop {node}")

    def kill_run_group(self, pid: int, start_time: int | None) -> None:
        pass  # simulated runs have no processes

    def recorded_end(self, job_id: str | None) -> float | None:
        return None

    def liveness(self, nodes: dict) -> dict[str, NodeLiveness]:  # type: ignore[type-arg]
        out = {}
        for name in nodes:
            k = self._where.get(name)
            alive = k is not None and self._procs[k].poll() is None
            out[name] = NodeLiveness(alive=alive, reason="" if alive else "simulated node gone")
        return out


register_backend(KIND, SimNodeBackend)


# ------------------------------------------------------------------------------------------ the simulator

def simulate(work_root: str, url: str) -> None:
    import redis

    from juqueue.broker.keys import Keys
    from juqueue.broker.leases import Leases
    from juqueue.events import EXITED, HEARTBEAT, STARTED, Event

    work = WorkDir(Path(work_root))
    client = redis.Redis.from_url(url, decode_responses=True)
    nodes: dict[str, dict] = {}  # name -> {keys, leases, interval, ttl, next_hb, version, max_stream}
    lock = threading.Lock()

    def read_commands() -> None:
        for line in sys.stdin:
            op, _, name = line.strip().partition(" ")
            with lock:
                if op == "start":
                    cfg = json.loads((work.node_dir(name) / "node.json").read_text())
                    keys = Keys(cfg["namespace"])
                    nodes[name] = {"keys": keys, "leases": Leases(client, keys), "version": cfg["version"],
                                   "interval": float(cfg["cluster"].get("heartbeat_interval") or 5.0),
                                   "ttl": float(cfg.get("lease_ttl_s", 120.0)), "next_hb": 0.0}
                elif op == "stop":
                    nodes.pop(name, None)
        os._exit(0)  # serve is gone

    threading.Thread(target=read_commands, daemon=True).start()

    def emit(pipe, keys, ev: Event) -> None:  # type: ignore[no-untyped-def]
        pipe.xadd(keys.events, ev.encode(), maxlen=1_000_000, approximate=True)

    while True:
        time.sleep(0.25)
        with lock:
            current = list(nodes.items())
        if not current:
            continue
        pipe = client.pipeline(transaction=False)
        for name, n in current:
            pipe.rpop(n["keys"].node_queue(name))
            pipe.lpop(n["keys"].node_control(name))
        replies = pipe.execute()
        now_m = time.monotonic()
        pipe = client.pipeline(transaction=False)
        for i, (name, n) in enumerate(current):
            message, control = replies[2 * i], replies[2 * i + 1]
            if control and json.loads(control).get("op") == "shutdown":
                emit(pipe, n["keys"], Event(type=HEARTBEAT, node=name, ts=time.time(), stopping=True, version=n["version"]))
                with lock:
                    nodes.pop(name, None)
                continue
            if message:
                gid, attempt, slots = json.loads(base64.b64decode(json.loads(message)["body"]))[0]
                if n["leases"].claim(gid, attempt, name, n["ttl"]) is not None:
                    t = time.time()
                    emit(pipe, n["keys"], Event(type=STARTED, node=name, ts=t, global_id=gid, attempt=attempt,
                                                slot=(slots or [0])[0], pid=os.getpid(), pstart=1))
                    n["leases"].release(gid, attempt, name, client=pipe)
                    emit(pipe, n["keys"], Event(type=EXITED, node=name, ts=t + 0.001, global_id=gid, attempt=attempt,
                                                exit_code=0))
                    n["next_hb"] = 0.0  # a heartbeat right after an exit, as a worker sends one
            if now_m >= n["next_hb"]:
                emit(pipe, n["keys"], Event(type=HEARTBEAT, node=name, ts=time.time(), version=n["version"]))
                n["next_hb"] = now_m + n["interval"]
        pipe.execute()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--sim":
    simulate(sys.argv[2], sys.argv[3])


# ------------------------------------------------------------------------------------------ the measurement

def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(entry_id: str) -> int:
    return int(str(entry_id).split("-")[0])


def measure_nodes(root: Path, n: int, phase_s: float, report, targets: dict) -> None:  # type: ignore[no-untyped-def]
    import httpx
    import redis

    from throughput import Serve, log, pct
    from juqueue.broker.keys import Keys
    from juqueue.controller.controller import namespace_for

    os.environ[ENV] = "scale_nodes"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    srv = Serve(root)
    (srv.def_dir / "clusters.yaml").write_text(
        f"sim:\n  type: {KIND}\n  num_slots: 1\n  max_jobs: {n}\n  idle_timeout: 36000\n  consolidation: idle\n"
        "  heartbeat_interval: 5\n")
    try:
        srv.start(timeout=120)
        srv.client.timeout = httpx.Timeout(600)
        (srv.def_dir / "sim.yaml").write_text(f"experiment: sim\ncluster: sim\ncmd: [\"true\"]\nid: \"r{{i}}\"\n"
                                             f"matrix:\n  i: [{', '.join(str(i) for i in range(n))}]\n")
        srv.api("POST", "/api/reload", params={"yes": "true"})
        t0 = time.perf_counter()
        up = 0
        while time.perf_counter() - t0 < 900:
            status = srv.api("GET", "/api/status").json()
            nodes = [x for c in status["clusters"] for x in c["nodes"] if x["state"] == "up"]
            up, done = len(nodes), (status.get("counts") or {}).get("completed", 0)
            if up >= n and done >= n:
                break
            time.sleep(2)
        report(f"nodes: {up} simulated nodes up, {n} trivial runs done after", time.perf_counter() - t0, "s")
        assert srv.proc is not None
        client = redis.Redis.from_url(WorkDir(srv.work_dir).broker_url_file.read_text().strip(), decode_responses=True)
        keys = Keys(namespace_for(srv.work_dir))
        log(f"nodes: idle phase of {phase_s:.0f} s: controller thread CPU, heartbeat handling lag")
        all0, w0 = _process_cpu_s(srv.proc.pid), time.perf_counter()
        x0 = client.xinfo_stream(keys.events)["entries-added"] if "entries-added" in client.xinfo_stream(keys.events) else None
        lags: list[float] = []
        while time.perf_counter() - w0 < phase_s:
            info = client.xinfo_stream(keys.events)
            group = next(g for g in client.xinfo_groups(keys.events) if g["name"] == keys.events_group)
            lags.append(max(0, _ms(info["last-generated-id"]) - _ms(group["last-delivered-id"])) / 1000)
            time.sleep(0.5)
        wall = time.perf_counter() - w0
        all_cpu = _process_cpu_s(srv.proc.pid) - all0
        added = client.xinfo_stream(keys.events).get("entries-added")
        if x0 is not None and added is not None:
            report("nodes: events (heartbeats) per second while idle", (added - x0) / wall, "/s")
        # Python names its threads only for itself (not in /proc), so the whole process is measured: the
        # controller thread's share is at most this.
        report(f"nodes: serve process CPU with {up} idle nodes (share of one core)", all_cpu / wall, "", targets["node_cpu"])
        report("nodes: heartbeat handling lag p95 (stream head - last read)", pct(lags, 0.95), "s", srv.tick)
        report("nodes: heartbeat handling lag max", max(lags), "s", srv.tick)
        report("nodes: controller batch p95 while idle", (srv.api("GET", "/api/status").json().get("batch") or {}).get("p95_ms"), "ms")
    finally:
        srv.stop()
