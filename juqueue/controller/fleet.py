"""The fleet: starting nodes the policy asks for, noticing nodes that died or fell silent,
and stopping nodes (two-phase: record every attempt's stop, then tell the worker)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

from juqueue.backends.base import BackendError, NodeBackend
from juqueue.controller.budgets import BudgetKeeper
from juqueue.controller.node_loss import NodeLoss
from juqueue.controller.publisher import Publisher
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.state import ControllerState, NodeInfo
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import write_json_atomic
from juqueue.policy.replacement import protected
from juqueue.policy.slot_demand import nodes_for_unplaced
from juqueue.policy.slot_placement import RunDemand
from juqueue.policy.scaling import ClusterLoad, idle_nodes_to_stop, nodes_to_start
from juqueue.status import NodeState, StopReason
from juqueue.version import __version__

log = logging.getLogger(__name__)


class Fleet:
    def __init__(self, state: ControllerState, lifecycle: RunLifecycle, loss: NodeLoss,
                 backends: dict[str, NodeBackend], publisher: Publisher, namespace: str, budgets: BudgetKeeper) -> None:
        self.s = state
        self.budgets = budgets
        self.lifecycle = lifecycle
        self.loss = loss
        self.backends = backends
        self.publisher = publisher
        self.namespace = namespace
        self._node_seq = 0

    # ---------------------------------------------------------------- scale out
    def scale_out(self, now: float, targets: dict[str, int] | None = None) -> None:
        """Start what the scaling policy's target asks for (and no node while a surplus node
        has a free slot); `targets` None: as many as the ready runs need, up to max_jobs."""
        s = self.s
        for name, spec in s.config.clusters.items():
            health = s.health[name]
            if health.resume_if_due(now):
                log.info("cluster %s: retrying submission after back-off", name)
            nodes = [n for n in s.nodes.values() if n.cluster == name and n.state.is_live]  # a node lost in this batch bills nothing
            starting_free = sum(n.slots_total - n.slots_used for n in nodes if n.state in (NodeState.PENDING, NodeState.STARTING))
            # Runs that need devices no live node has are not demand, except for one node
            # started to look for devices (the next may have them; the same job script rarely does).
            starved = s.device_starved_runs(name)
            starved_slots = s.device_starved_slots(name) if starved else 0
            accepting = [n for n in nodes if n.state in (NodeState.PENDING, NodeState.STARTING, NodeState.UP)]
            load = ClusterLoad(
                ready_queued=s.queue.ready_slots(name) - starved_slots, num_slots=spec.num_slots, max_jobs=spec.max_jobs,
                free_slots_accepting=starting_free, live_nodes=len(nodes), accepting_nodes=len(accepting),
                surplus_free_slots=sum(max(0, n.slots_total - n.slots_used - s.reserved.get(n.name, 0))
                                       for n in accepting if n.name in s.surplus and n.state == NodeState.UP),
                # k-slot runs that fit no live node whole start one even if the free slots add up
                unfit_nodes=s.unfit_nodes(name, spec.num_slots, now),
            )
            paused = health.paused_reason is not None
            target = None if targets is None else targets.get(name)
            wanted = nodes_to_start(load, paused=paused, target=target)
            if (wanted or starved) and self.budgets.any_caps():
                load = self._within_budgets(name, spec, load, now)
                wanted = nodes_to_start(load, paused=paused, target=target) if load.max_jobs else 0
                starved = starved if load.max_jobs else 0
            if starved and not wanted and not paused and health.device_probes < 1 and len(nodes) < spec.max_jobs:
                health.device_probes += 1
                probe = self.start_node(spec, now)
                if probe is not None:
                    probe.device_probe = True
                continue
            for _ in range(wanted):
                self.start_node(spec, now)

    def _within_budgets(self, name: str, spec: ClusterSpec, load: ClusterLoad, now: float) -> ClusterLoad:
        """The load as budgets allow: no start at all past the cluster's cap (max_jobs 0), and
        ready runs of an experiment at its cap are no demand (they may still use free slots).
        Waiting runs say why; the reason is set when it changes."""
        s = self.s
        ready = s.queue.head(name, s.queue.ready_count(name))
        refusal = self.budgets.cluster_refusal(name, spec, now)
        by_exp: dict[str, str | None] = {}
        capped = 0
        for gid in ready:
            exp = s.runs[gid].experiment
            if exp not in by_exp:
                by_exp[exp] = self.budgets.experiment_refusal(exp, spec, now)
            reason = refusal or by_exp[exp]
            if by_exp[exp]:
                capped += s.runs[gid].slots
            run = s.runs[gid]
            if reason or (run.reason or "").startswith("node-hour budget"):
                self.lifecycle.set_wait_reason(run, reason)
        if refusal:
            return replace(load, max_jobs=0)
        # A capped experiment's k-slot runs are no reason to start a node either.
        unfit = load.unfit_nodes if not capped else self._unfit_uncapped(name, spec, by_exp, now)
        return replace(load, ready_queued=max(0, load.ready_queued - capped), unfit_nodes=unfit)

    def _unfit_uncapped(self, name: str, spec: ClusterSpec, refusals: dict[str, str | None], now: float) -> int:
        s = self.s
        if s.queue.ready_slots(name) <= s.queue.ready_count(name):
            return 0
        ready = [RunDemand(d.run, d.slots) for d in s.ready_demands(name) if not refusals.get(s.runs[d.run].experiment)]
        return nodes_for_unplaced(ready, s.slot_nodes(now, name), spec.num_slots, s.reserved)

    def _new_node_name(self, cluster: str, now: float) -> str:
        self._node_seq += 1
        # The random part keeps names unique across restarts (the time part wraps after days).
        return f"{cluster}-{int(now * 1000) % 10**9:09d}-{self._node_seq}{secrets.token_hex(2)}"

    def start_node(self, spec: ClusterSpec, now: float) -> NodeInfo | None:
        s = self.s
        backend = self.backends[spec.type]
        node = NodeInfo(name=self._new_node_name(spec.name, now), cluster=spec.name, backend=spec.type,
                        token=secrets.token_hex(8), state=NodeState.PENDING, slots_total=spec.num_slots, created_at=now)
        s.nodes[node.name] = node
        s.batch.new_nodes.append({"name": node.name, "cluster": node.cluster, "backend": node.backend, "token": node.token,
                                  "slots_total": node.slots_total, "created_at": now, **node.columns()})
        try:
            self._write_node_config(node, spec)
        except OSError as exc:
            self.loss.node_failed(node, f"work dir: {exc}", now)
            self.start_failed(spec.name, f"work dir: {exc}", now)
            return None
        s.commit()  # the token is in the store before the job exists
        try:
            started = backend.start_node(spec, node.name, node.token)
        except BackendError as exc:
            self.loss.node_failed(node, str(exc), now)
            self.start_failed(spec.name, str(exc), now)
            return None
        node.state, node.job_id, node.pid = NodeState.STARTING, started.job_id, started.pid
        node.started_at = now
        node.billed_from = started.billing_from
        if started.time_limit_s:
            node.time_limit_at = now + started.time_limit_s
        s.mark_node_dirty(node)
        log.info("started node %s (%s)", node.name, started.job_id or f"pid {started.pid}")
        return node

    def _write_node_config(self, node: NodeInfo, spec: ClusterSpec) -> None:
        s = self.s
        write_json_atomic(
            s.config.work.node_dir(node.name) / "node.json",
            {"node": node.name, "token": node.token, "namespace": self.namespace, "version": __version__,
             "cluster": spec.model_dump(), "lease_ttl_s": s.config.lease_ttl_s,
             "controller_silence_s": s.config.controller_silence_s, "task_events": s.config.task_events},
        )

    def start_failed(self, cluster: str, reason: str, now: float) -> None:
        health = self.s.health[cluster]
        if health.start_failed(reason, now, self.s.config.max_start_failures):
            log.error("cluster %s: pausing submission until %.0f: %s", cluster, health.paused_until, health.paused_reason)

    def node_up(self, node: NodeInfo, now: float) -> None:
        node.state = NodeState.UP
        node.up_at = node.up_at or now
        node.last_heartbeat = node.last_heartbeat or now
        node.reason = None
        self.s.health[node.cluster].start_failures = 0
        self.s.maybe_idle(node, now)
        self.s.mark_node_dirty(node)
        self.s.dirty_placement = True

    # ---------------------------------------------------------------- liveness
    def check_liveness(self, now: float) -> None:
        s = self.s
        by_backend: dict[str, dict[str, tuple[str | None, int | None]]] = {}
        for node in s.nodes.values():
            if node.state != NodeState.PENDING:
                by_backend.setdefault(node.backend, {})[node.name] = (node.job_id, node.pid)
        for kind, nodes in by_backend.items():
            backend = self.backends.get(kind)
            if backend is None:
                continue
            for name, live in backend.liveness(nodes).items():
                node = s.nodes[name]
                if live.started_at is not None and node.billed_from is None:
                    node.billed_from = live.started_at  # the scheduler's own start: billing begins
                    s.mark_node_dirty(node)
                self._judge(node, backend, live.alive, live.reason, live.time_left_s, now)

    def _judge(self, node: NodeInfo, backend: NodeBackend, alive: bool, why: str, time_left_s: float | None, now: float) -> None:
        spec = self.s.config.clusters.get(node.cluster)
        if time_left_s is not None:
            node.time_limit_at = now + time_left_s
        if not alive:
            failure = self.s.config.work.node_dir(node.name) / "failure"
            reason = failure.read_text().strip() if failure.exists() else why
            if node.state == NodeState.STARTING:
                self.loss.node_failed(node, reason, now)
                self.start_failed(node.cluster, reason, now)
            else:
                self.loss.node_gone(node, reason, now)
            return
        timeout = spec.heartbeat_timeout if spec else self.s.config.heartbeat_timeout_s
        silent = node.last_heartbeat is not None and now - node.last_heartbeat > timeout
        if silent and node.state == NodeState.STOPPING and backend.loss_confirmed_by_scheduler and node.stop_sent_at:
            # Cancelled already: wait for the scheduler to confirm; ask again only after a while.
            if now - node.stop_sent_at > self.s.config.stop_escalate_s:
                backend.stop_node(node.name, node.job_id, node.pid)
                node.stop_sent_at = now
        elif node.state in (NodeState.UP, NodeState.DRAINING, NodeState.STOPPING) and silent:
            log.warning("node %s silent for %.0f s: ending it", node.name, now - (node.last_heartbeat or now))
            backend.stop_node(node.name, node.job_id, node.pid)
            if backend.loss_confirmed_by_scheduler:
                # Its runs are requeued once the scheduler confirms the job gone (next poll).
                node.state, node.reason = NodeState.STOPPING, f"no heartbeat for {timeout:.0f} s; job cancelled"
                node.stop_sent_at = now
                self.s.mark_node_dirty(node)
            else:
                self.loss.node_gone(node, f"no heartbeat for {timeout:.0f} s", now)
        elif (node.state == NodeState.STARTING and not backend.loss_confirmed_by_scheduler and node.started_at
              and now - node.started_at > self.s.config.start_timeout_s):
            backend.stop_node(node.name, node.job_id, node.pid)
            self.loss.node_failed(node, f"worker did not come up within {self.s.config.start_timeout_s:.0f} s", now)
            self.start_failed(node.cluster, node.reason or "", now)
        elif node.state == NodeState.STOPPING and node.stop_sent_at and now - node.stop_sent_at > self.s.config.stop_escalate_s:
            backend.stop_node(node.name, node.job_id, node.pid)
            node.stop_sent_at = now

    # ---------------------------------------------------------------- stops
    def stop_idle_nodes(self, now: float) -> None:
        s = self.s
        for node in list(s.nodes.values()):  # nodes of a cluster removed from clusters.yaml
            if node.cluster not in s.config.clusters and node.state in (NodeState.UP, NodeState.DRAINING) \
                    and not node.runs and not s.pending_exits.get(node.name):
                self.request_node_stop(node, StopReason.NODE_STOP, "its cluster was removed", now)
        for name, spec in s.config.clusters.items():
            # A node holding a slot reserved for a run being moved there is not idle.
            idle = {n.name: n.idle_since for n in s.nodes.values()
                    if n.cluster == name and n.state in (NodeState.UP, NodeState.DRAINING) and not n.runs
                    and n.idle_since is not None and not s.reserved.get(n.name) and not protected(n.protected_until, now)}
            accepting = {n for n in idle if s.nodes[n].state == NodeState.UP}
            for node_name in idle_nodes_to_stop(idle, now, spec.idle_timeout, ready_waiting=s.queue.ready_count(name),  # type: ignore[arg-type]
                                                accepting=accepting):
                self.request_node_stop(s.nodes[node_name], StopReason.NODE_STOP, "idle", now)

    def request_node_stop(self, node: NodeInfo, reason: StopReason, detail: str, now: float) -> None:
        """Two-phase: record the stop of every attempt, then ask the worker to shut down."""
        s = self.s
        for gid in node.runs:
            run = s.runs.get(gid)
            if run is not None and run.status.is_live:
                self.lifecycle.record_stop(run, reason, f"node stopped ({detail})")
        node.state = NodeState.STOPPING
        # what a node without the devices its run needed showed stays readable while it stops
        devices = node.reason if node.no_devices and (node.reason or "").startswith("no CUDA devices") else None
        node.reason = f"stopping: {detail}" + (f"; {devices}" if devices else "")
        node.stop_sent_at = now
        s.mark_node_dirty(node)
        s.commit()
        self.publisher.send_control(node.name, {"op": "shutdown", "reason": detail})
