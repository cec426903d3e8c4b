"""The broker step: the embedded broker (valkey) started, or the `--broker` URL taken as is;
either way the URL is written to the work dir, where workers find it."""

from __future__ import annotations

import ipaddress
import logging
import socket

from juqueue.paths import write_atomic
from juqueue.serve.context import ServeContext

log = logging.getLogger("juqueue.server")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def default_broker_host() -> str:
    """The hostname's address, which compute nodes can reach; loopback when it does not resolve."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class BrokerStep:
    """Reads opts.broker and opts.broker_host, and ctx.clusters (a slurm cluster needs a broker
    compute nodes can reach); fills ctx.broker_url and ctx.broker. Stop ends the embedded
    broker, unless the controller step left SLURM jobs running (ctx.slurm_jobs_alive): they
    keep their leases on it, and the next `serve` on this work dir reattaches them."""

    name = "broker"
    requires: tuple[str, ...] = ("workdir", "store")  # the store first: a refused store leaves no broker behind

    def start(self, ctx: ServeContext) -> None:
        ctx.broker_url = self._start_broker(ctx)
        write_atomic(ctx.work.broker_url_file, ctx.broker_url + "\n", mode=0o600)

    def _start_broker(self, ctx: ServeContext) -> str:
        from juqueue.broker.embedded import EmbeddedBroker

        if ctx.opts.broker:
            return ctx.opts.broker
        has_slurm = any(c.type == "slurm" for c in ctx.clusters.values())
        host = ctx.opts.broker_host or (default_broker_host() if has_slurm else "127.0.0.1")
        if has_slurm and is_loopback(host):
            log.warning("the broker listens on %s only: compute nodes on other hosts cannot reach it (set --broker-host)", host)
        ctx.broker = EmbeddedBroker(ctx.work, host=host)
        ctx.broker.start()
        return ctx.broker.settings.url(host)

    def stop(self, ctx: ServeContext) -> None:
        if ctx.broker is None:
            return
        if ctx.slurm_jobs_alive:
            print("SLURM jobs are still running: the embedded broker stays up so they keep their leases; "
                  "`juqueue serve` on this work dir reattaches them (`juqueue stop --cancel-jobs` ends them).", flush=True)
        else:
            ctx.broker.stop()
