"""The broker step: the embedded broker (valkey) started, or the `--broker` URL taken as is;
either way the URL is written to the work dir, where workers find it."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Any, Iterable

from juqueue.broker.lifetime import Ledger, ProcessRef, ServedNode, read_ledger, write_ledger
from juqueue.paths import write_atomic
from juqueue.process_group import process_start_time
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


def served_nodes(nodes: Iterable[Any]) -> tuple[ServedNode, ...]:
    """The live nodes among the controller's `NodeInfo`s, as the broker's ledger lists them."""
    out = []
    for n in sorted(nodes, key=lambda n: n.name):
        if not n.state.is_live:
            continue
        start = process_start_time(n.pid) if n.pid and n.backend != "slurm" else None
        out.append(ServedNode(node=n.name, backend=n.backend, job_id=n.job_id, pid=n.pid, start_time=start))
    return tuple(out)


def refresh_ledger(ctx: ServeContext, timeout_s: float = 10.0) -> None:
    """Write the live nodes into the broker's ledger (when they changed), so that the watcher
    knows whom the broker serves should this `serve` die without a word (SIGKILL, OOM)."""
    if ctx.broker is None or ctx.controller is None:
        return
    controller = ctx.controller
    nodes = controller.call(lambda: served_nodes(list(controller.nodes.values())), timeout_s)
    ledger = read_ledger(ctx.work)
    if ledger.nodes != nodes:
        write_ledger(ctx.work, Ledger(server=ledger.server, grace_s=ledger.grace_s, nodes=nodes))  # type: ignore[arg-type]  # call() is untyped


class BrokerStep:
    """Reads opts.broker and opts.broker_host, and ctx.clusters (a slurm cluster needs a broker
    compute nodes can reach); fills ctx.broker_url and ctx.broker. Stop ends the embedded
    broker, unless the controller step left SLURM jobs running (ctx.slurm_jobs_alive): they
    keep their leases on it, and the next `serve` on this work dir reattaches them. The broker's
    ledger names this `serve` while it runs, and the watcher beside the broker ends it once
    neither a server nor a job of the ledger lives for the grace (`juqueue.broker.lifetime`)."""

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
        from juqueue.broker.watcher import ensure_watcher

        ctx.broker = EmbeddedBroker(ctx.work, host=host)
        # named in the ledger before adopting a running broker, so that its watcher keeps it; the
        # nodes of an earlier `serve` stay listed until the controller has looked at them
        me = ProcessRef(pid=os.getpid(), start_time=process_start_time(os.getpid()))
        write_ledger(ctx.work, Ledger(server=me, grace_s=ctx.settings.broker_grace_s, nodes=read_ledger(ctx.work).nodes))
        ctx.broker.start()
        ensure_watcher(ctx.work)
        return ctx.broker.settings.url(host)

    def stop(self, ctx: ServeContext) -> None:
        from juqueue.broker.watcher import ensure_watcher, stop_watcher

        if ctx.broker is None:
            return
        kept = served_nodes(ctx.controller.nodes.values()) if ctx.slurm_jobs_alive and ctx.controller is not None else ()
        write_ledger(ctx.work, Ledger(server=None, grace_s=ctx.settings.broker_grace_s, nodes=kept))
        if ctx.slurm_jobs_alive:
            ensure_watcher(ctx.work)  # it ends the broker once the jobs are gone
            print("SLURM jobs are still running: the embedded broker stays up so they keep their leases; "
                  "`juqueue serve` on this work dir reattaches them (`juqueue stop --cancel-jobs` ends them).", flush=True)
        else:
            ctx.broker.stop()
            stop_watcher(ctx.work)
