"""`juqueue stop`: nodes whose processes die with the server (every node with `--cancel-jobs`)
are stopped the two-phase way, and their runs are interrupted (they resume at the next serve)."""

from __future__ import annotations

import time

from juqueue.backends.base import NodeBackend
from juqueue.broker.event_stream import EventStream
from juqueue.controller.fleet import Fleet
from juqueue.controller.ingest import EventIngest
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.state import ControllerState
from juqueue.events import Event
from juqueue.status import NodeState, StopReason


def shutdown_nodes(s: ControllerState, fleet: Fleet, loss: NodeLoss, ingest: EventIngest, stream: EventStream,
                   backends: dict[str, NodeBackend], cancel_jobs: bool) -> None:
    """Stop the nodes, wait up to the longest grace period (+10 s) for their workers to end
    (applying their exits), then end whatever is left."""
    s.stopping = True
    for node in list(s.nodes.values()):
        backend = backends.get(node.backend)
        if cancel_jobs or backend is None or backend.dies_with_server:
            fleet.request_node_stop(node, StopReason.SERVER_STOP, "server stopping", s.now())
    deadline = time.time() + max((c.grace_period for c in s.config.clusters.values()), default=10) + 10
    stopping = [n for n in s.nodes.values() if n.state == NodeState.STOPPING]
    while stopping and time.time() < deadline:
        entries = stream.read(False, 200, s.config.read_count)
        for _eid, data in entries:
            ingest.apply(Event.decode(data), s.now())
        by_backend: dict[str, dict[str, tuple[str | None, int | None]]] = {}
        for n in stopping:
            by_backend.setdefault(n.backend, {})[n.name] = (n.job_id, n.pid)
        for kind, group in by_backend.items():
            for name, live in backends[kind].liveness(group).items():
                if not live.alive:
                    loss.node_gone(s.nodes[name], "server stopped", s.now())
        s.commit()
        stream.ack([eid for eid, _ in entries])
        stopping = [n for n in s.nodes.values() if n.state == NodeState.STOPPING]
    for node in stopping:
        backends[node.backend].stop_node(node.name, node.job_id, node.pid)
        loss.node_gone(node, "server stopped", s.now())
    s.commit()
