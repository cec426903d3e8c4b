"""The API step: the FastAPI app under uvicorn on the listen step's TCP port and/or Unix
socket, recorded where clients find it (the work dir's server.json and the user's registry).
Without either (`--port -1`), `serve` waits for SIGTERM or SIGINT instead."""

from __future__ import annotations

import logging
import os
import signal
import threading

from juqueue.serve.context import ServeContext
from juqueue.serve.listen import DEFAULT_PORT

log = logging.getLogger("juqueue.server")

GRACEFUL_SHUTDOWN_S = 5  # uvicorn's wait for open responses at stop, then it cancels them


class ApiStep:
    """Reads opts.host, opts.port (to tell a default port that was taken) and opts.flower_port;
    serves ctx.store, ctx.controller, ctx.reload and ctx.token. Stop removes the server from
    the registry; the listen step closes the sockets."""

    name = "api"
    requires: tuple[str, ...] = ("listen", "store", "controller", "reloader")

    def __init__(self) -> None:
        self._uvicorn = None

    def start(self, ctx: ServeContext) -> None:
        from juqueue.client import record_server

        opts = ctx.opts
        if not (ctx.port or ctx.unix_socket is not None):
            record_server(ctx.work, None, None, opts.host)
            print(f"JuQueue is serving {ctx.def_dir} (work dir {ctx.work.root}) without an API (--port -1): "
                  f"stop it with SIGTERM or SIGINT (kill {os.getpid()}); `juqueue stop` cannot reach it", flush=True)
            return
        import uvicorn

        from juqueue.api.app import create_app
        from juqueue.api.context import AppContext

        controller = ctx.controller
        assert controller is not None and ctx.store is not None and ctx.reload is not None
        app_ctx = AppContext(store=ctx.store, controller=controller, token=ctx.token, work=ctx.work,
                             clusters=lambda: controller.clusters_view, port=ctx.port, reload=ctx.reload,
                             request_stop=lambda cancel_jobs: self.request_stop(ctx, cancel_jobs),
                             flower_url=f"http://127.0.0.1:{opts.flower_port}/flower" if opts.flower_port else None,
                             stopping=lambda: self._uvicorn is not None and bool(self._uvicorn.should_exit),
                             loading=lambda: ctx.loading)
        # Open event streams end by themselves once should_exit is set (they look every 0.5 s);
        # the timeout cancels whatever response still runs after it, so a stream never holds the stop.
        config = uvicorn.Config(create_app(app_ctx), host=opts.host, port=ctx.port or 0, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self._uvicorn = uvicorn.Server(config)
        if ctx.sockets and ctx.port:  # the socket given to uvicorn means every listener is
            ctx.sockets.append(config.bind_socket())
        url = f"http://{opts.host}:{ctx.port}" if ctx.port else None
        record_server(ctx.work, url, ctx.port or None, opts.host, unix_socket=ctx.unix_socket)
        if opts.port is None and ctx.port and ctx.port != DEFAULT_PORT:
            print(f"port {DEFAULT_PORT} is taken; using {ctx.port}", flush=True)
        print(f"JuQueue is serving {ctx.def_dir} (work dir {ctx.work.root})", flush=True)
        if ctx.unix_socket is not None:
            print(f"API on the Unix socket {ctx.unix_socket} (mode 0600: yours only); `juqueue status --work-dir "
                  f"{ctx.work.root}` finds it", flush=True)
        if url:
            print(f"Dashboard: {url}/?token={ctx.token}", flush=True)

    def serve(self, ctx: ServeContext) -> None:
        """Serve until stopped: by `juqueue stop` (the API), SIGTERM or SIGINT."""
        if self._uvicorn is not None:
            self._uvicorn.run(sockets=ctx.sockets or None)
        else:
            _wait_for_signal()

    def request_stop(self, ctx: ServeContext, cancel_jobs: bool) -> dict:
        """`juqueue stop`: answer first, then end uvicorn (the steps are stopped after it returns)."""
        ctx.cancel_jobs = cancel_jobs
        threading.Timer(0.3, self._signal_exit).start()
        return {"stopping": True, "cancel_jobs": cancel_jobs}

    def _signal_exit(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def stop(self, ctx: ServeContext) -> None:
        from juqueue.client import unregister_server

        unregister_server(ctx.work)


def _wait_for_signal() -> None:
    """Without an API, SIGTERM or SIGINT ends `serve` (uvicorn handles them otherwise)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    while not stop.wait(1.0):
        pass
