"""`juqueue serve`: the pieces it runs (broker, store, controller, beat, local nodes and the API),
wired together, started in order and stopped in reverse."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from juqueue.backends.local import LocalBackend
from juqueue.broker.client import make_redis
from juqueue.broker.embedded import EmbeddedBroker
from juqueue.celery_app import make_celery_app
from juqueue.controller.controller import Controller, ControllerConfig, namespace_for
from juqueue.errors import ConfigError, JuQueueError
from juqueue.paths import WorkDir, write_atomic
from juqueue.process_group import read_stat
from juqueue.server import (
    ServeOptions,
    WorkDirLock,
    api_port,
    become_subreaper,
    bind_unix_socket,
    default_broker_host,
    load_or_create_token,
    start_beat,
    start_flower,
)
from juqueue.store.engine import make_engine
from juqueue.store.store import Store
from juqueue.workdir import migrate_work_dir

log = logging.getLogger("juqueue.server")


CONFIRM_STOPS = 10  # a reload that stops more live runs than this needs `--yes`


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ServerRuntime:
    """One `serve`: owns the work-dir lock and every piece it started, so shutdown can undo them."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.work = WorkDir(opts.work_dir.resolve())
        self.def_dir = opts.def_dir.resolve()
        self.lock = WorkDirLock(self.work)
        self.broker: EmbeddedBroker | None = None
        self.backends: dict = {}
        self.beat: subprocess.Popen | None = None
        self.flower: subprocess.Popen | None = None
        self.controller: Controller | None = None
        self._uvicorn = None
        self._stop_event = threading.Event()
        self._cancel_jobs = False
        self.port = 0  # the API's TCP port; 0: none (--port -1, or --unix-socket alone)
        self.unix_socket: Path | None = None
        self._sockets: list[socket.socket] = []

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        from juqueue.definitions.clusters import load_clusters

        if not self.def_dir.is_dir():
            raise ConfigError(f"definition directory {self.def_dir} does not exist")
        clusters_file = self.def_dir / "clusters.yaml"
        if not clusters_file.is_file():
            raise ConfigError(f"{clusters_file} is missing: define at least one cluster there")
        self.clusters = load_clusters(clusters_file)
        self.lock.acquire()
        migrate_work_dir(self.work, self.opts.db_url)  # a work dir of an earlier release: into today's layout first
        self.token = load_or_create_token(self.work)
        self.port = api_port(self.opts) or 0
        if self.opts.unix_socket is not None:
            self.unix_socket = Path(self.opts.unix_socket).expanduser().resolve()
            self._sockets.append(bind_unix_socket(self.unix_socket))
        # The store first: a store this version refuses must not leave a broker behind.
        self.store = Store(make_engine(self.opts.db_url, self.work.root))
        broker_url = self._start_broker()
        write_atomic(self.work.broker_url_file, broker_url + "\n", mode=0o600)
        self.namespace = namespace_for(self.work.root)
        client = make_redis(broker_url, socket_timeout=10)
        app = make_celery_app(broker_url)
        backends: dict = {"local": LocalBackend(self.work)}
        self.backends = backends
        self._add_slurm_backend(self.clusters)
        become_subreaper()
        self.controller = Controller.on_redis(
            ControllerConfig(self.work, self.clusters, tick_interval_s=self.opts.tick_interval, task_events=bool(self.opts.flower_port),
                             hold_new=self.opts.hold_new),
            self.store, client, app, backends, self.namespace
        )
        fresh_store = not any(self.store.status_counts().values())
        self.controller.start()
        summary = self.reload(yes=True)  # nothing runs yet: nothing to confirm
        for error in summary["errors"]:
            log.error("definition error: %s", error)
        if fresh_store:
            self._adopt_original_statuses()
        self.beat = start_beat(self.work, self.controller.keys.tick_queue, self.opts.tick_interval)
        if self.opts.flower_port:
            self.flower = start_flower(self.work, self.opts.flower_port, self.token)
        threading.Thread(target=self._supervise, name="juqueue-supervisor", daemon=True).start()
        self._start_api()

    def _start_broker(self) -> str:
        if self.opts.broker:
            return self.opts.broker
        has_slurm = any(c.type == "slurm" for c in self.clusters.values())
        host = self.opts.broker_host or (default_broker_host() if has_slurm else "127.0.0.1")
        if has_slurm and _is_loopback(host):
            log.warning("the broker listens on %s only: compute nodes on other hosts cannot reach it (set --broker-host)", host)
        self.broker = EmbeddedBroker(self.work, host=host)
        self.broker.start()
        return self.broker.settings.url(host)

    def _adopt_original_statuses(self) -> None:
        """A work dir the original JuQueue used: its runs keep what it knew (finished runs are not
        rerun, inactive ones are held), read once, when this store is new."""
        from juqueue.original_statuses import original_run_statuses

        found = original_run_statuses(self.work.root)
        for warning in found.warnings:
            log.warning("original work dir: %s", warning)
        if found.statuses:
            controller = self.controller
            done = controller.call(lambda: controller.actions.adopt_original(found.statuses))  # type: ignore[union-attr]
            log.info("original work dir: kept the status of %d run(s) from juqueue-run.json", len(done))  # type: ignore[arg-type]

    def _add_slurm_backend(self, clusters: dict) -> None:
        if "slurm" in self.backends or not any(c.type == "slurm" for c in clusters.values()):
            return
        from juqueue.backends.slurm import SlurmBackend

        poll = min(c.poll_interval for c in clusters.values() if c.type == "slurm")
        prefixes = {c.job_name for c in clusters.values() if c.type == "slurm"}
        self.backends["slurm"] = SlurmBackend(self.work, poll_interval_s=poll, name_prefix=os.path.commonprefix(sorted(prefixes)))

    def reload_clusters(self) -> tuple[dict, list[str]]:
        """Re-read clusters.yaml and apply it; a file with errors changes nothing."""
        from juqueue.definitions.clusters import load_clusters

        assert self.controller is not None
        path = self.def_dir / "clusters.yaml"
        try:
            new = load_clusters(path)
        except ConfigError as exc:
            return {}, [f"{exc} (clusters.yaml not applied)"]
        first_slurm = sorted(n for n, c in new.items() if c.type == "slurm") if "slurm" not in self.backends else []
        if first_slurm and self.broker is not None and _is_loopback(self.broker.host):
            return {}, [f"{path}: cluster {first_slurm[0]!r} is the first slurm cluster, but the embedded broker listens on "
                        f"{self.broker.host} only, which compute nodes cannot reach: restart `juqueue serve` (with "
                        "--broker-host if needed) to add it; clusters.yaml was not applied"]
        self._add_slurm_backend(new)
        controller = self.controller
        return controller.call(lambda: controller.apply_clusters(new)), []  # type: ignore[return-value]

    def reload(self, yes: bool = False) -> dict:
        """Re-read clusters.yaml and the definitions and apply them. More than CONFIRM_STOPS live
        runs to stop (their definitions changed) needs `yes`; else nothing is applied."""
        from juqueue.definitions.evaluate import load_definitions

        assert self.controller is not None
        controller = self.controller
        result = load_definitions(self.def_dir, set(self.clusters), timeout_s=60)
        if not yes and not getattr(result, "aborted", False):
            would_stop = controller.call(lambda: controller.actions.preview_stops(result))
            if len(would_stop) > CONFIRM_STOPS:  # type: ignore[arg-type]
                return {"added": [], "updated": [], "undefined": [], "stopped": [], "errors": [],
                        "needs_confirmation": True, "would_stop": would_stop}
        cluster_changes, cluster_errors = self.reload_clusters()
        if getattr(result, "aborted", False):
            errors = cluster_errors + [str(e) for e in result.errors]
            self.controller.definition_errors = errors
            return {"added": [], "updated": [], "undefined": [], "stopped": [], "errors": errors, "clusters": cluster_changes}
        summary = self.controller.call(lambda: self.controller.apply_definitions(result))  # type: ignore[union-attr]
        summary["errors"] = cluster_errors + summary["errors"]  # type: ignore[index]
        summary["clusters"] = cluster_changes  # type: ignore[index]
        if cluster_errors:
            self.controller.definition_errors = summary["errors"]  # type: ignore[index]
        return summary  # type: ignore[return-value]

    def request_stop(self, cancel_jobs: bool) -> dict:
        self._cancel_jobs = cancel_jobs
        threading.Timer(0.3, self._signal_exit).start()
        return {"stopping": True, "cancel_jobs": cancel_jobs}

    def _signal_exit(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    @property
    def has_api(self) -> bool:
        return bool(self.port) or self.unix_socket is not None

    def _start_api(self) -> None:
        from juqueue.client import record_server

        if not self.has_api:
            record_server(self.work, None, None, self.opts.host)
            print(f"JuQueue is serving {self.def_dir} (work dir {self.work.root}) without an API (--port -1): "
                  f"stop it with SIGTERM or SIGINT (kill {os.getpid()}); `juqueue stop` cannot reach it", flush=True)
            return
        import uvicorn

        from juqueue.api.app import create_app
        from juqueue.api.context import AppContext

        assert self.controller is not None
        ctx = AppContext(store=self.store, controller=self.controller, token=self.token, work=self.work, clusters=self.clusters,
                         port=self.port, reload=self.reload, request_stop=self.request_stop,
                         flower_url=f"http://127.0.0.1:{self.opts.flower_port}/flower" if self.opts.flower_port else None)
        config = uvicorn.Config(create_app(ctx), host=self.opts.host, port=self.port or 0, log_level="warning", access_log=False)
        self._uvicorn = uvicorn.Server(config)
        if self._sockets and self.port:  # the socket given to uvicorn means every listener is
            self._sockets.append(config.bind_socket())
        url = f"http://{self.opts.host}:{self.port}" if self.port else None
        record_server(self.work, url, self.port or None, self.opts.host, unix_socket=self.unix_socket)
        if self.opts.port is None and self.port and self.port != 51234:
            print(f"port 51234 is taken; using {self.port}", flush=True)
        print(f"JuQueue is serving {self.def_dir} (work dir {self.work.root})", flush=True)
        if self.unix_socket is not None:
            print(f"API on the Unix socket {self.unix_socket} (mode 0600: yours only); `juqueue status --work-dir "
                  f"{self.work.root}` finds it", flush=True)
        if url:
            print(f"Dashboard: {url}/?token={self.token}", flush=True)

    # ------------------------------------------------------------------ run & stop
    def serve_forever(self) -> int:
        try:
            if self._uvicorn is not None:
                self._uvicorn.run(sockets=self._sockets or None)
            else:
                self._wait_for_signal()
        finally:
            self.shutdown()
        return 0

    def _wait_for_signal(self) -> None:
        """Without an API, SIGTERM or SIGINT ends `serve` (uvicorn handles them otherwise)."""
        stop = threading.Event()

        def handler(signum: int, _frame: object) -> None:
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)
        while not stop.wait(1.0):
            pass

    def _supervise(self) -> None:
        """Keep the broker and beat alive, and reap orphans reparented to us."""
        while not self._stop_event.wait(5.0):
            try:
                if self.broker is not None and self.broker.ensure_running():
                    log.warning("embedded broker restarted")
                if self.beat is not None and self.beat.poll() is not None and self.controller is not None:
                    log.warning("celery beat exited (%s); restarting it", self.beat.returncode)
                    self.beat = start_beat(self.work, self.controller.keys.tick_queue, self.opts.tick_interval)
                _reap_orphans()
            except Exception:
                log.exception("supervisor check failed")

    def shutdown(self) -> None:
        self._stop_event.set()
        jobs_alive = False
        if self.controller is not None:
            try:
                self.controller.shutdown(cancel_jobs=self._cancel_jobs)
                jobs_alive = any(n.backend == "slurm" for n in self.controller.nodes.values() if n.state.is_live)
            except Exception:
                log.exception("stopping the controller failed")
        for helper in (self.beat, self.flower):
            if helper is not None and helper.poll() is None:
                helper.terminate()
                try:
                    helper.wait(10)
                except subprocess.TimeoutExpired:
                    helper.kill()
        if self.broker is not None:
            if jobs_alive:
                print("SLURM jobs are still running: the embedded broker stays up so they keep their leases; "
                      "`juqueue serve` on this work dir reattaches them (`juqueue stop --cancel-jobs` ends them).", flush=True)
            else:
                self.broker.stop()
        from juqueue.client import unregister_server

        unregister_server(self.work)
        for sock in self._sockets:
            sock.close()
        if self.unix_socket is not None:
            try:
                if self.unix_socket.is_socket():
                    self.unix_socket.unlink()
            except OSError:
                pass
        self.lock.release()


def _reap_orphans() -> None:
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
        if ppid == me and state == "Z" and not comm.startswith(("python", "valkey", "celery")):
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass


def run_server(opts: ServeOptions) -> int:
    """Start everything, serve until stopped, tear down; a JuQueueError at start is one line, exit 2."""
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runtime = ServerRuntime(opts)
        runtime.start()
    except JuQueueError as exc:
        print(f"juqueue: {exc}", file=sys.stderr)
        return 2
    return runtime.serve_forever()
