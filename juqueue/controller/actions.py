"""What users ask for (cancel, requeue, reload), carried out on the controller thread.

The statuses each run verb acts on come from juqueue.run_verbs, the table the API and the CLI
read too."""

from __future__ import annotations

import json
from collections.abc import Collection

from juqueue.broker.leases import Leases
from juqueue.controller.lifecycle import RunLifecycle
from juqueue.controller.publisher import Publisher
from juqueue.controller.records import traits_of
from juqueue.controller.state import ControllerState, RunState
from juqueue.controller.budgets import BudgetKeeper
from juqueue.controller.config import ClusterHealth
from juqueue.definitions.models import ClusterSpec, DefinitionError
from juqueue.run_verbs import CANCEL, HOLD, RELEASE, REQUEUE, RESUME
from juqueue.status import NodeState, RunStatus, StopReason


class UserActions:
    def __init__(self, state: ControllerState, lifecycle: RunLifecycle, publisher: Publisher, leases: Leases,
                 budgets: BudgetKeeper | None = None) -> None:
        self.s = state
        self.budgets = budgets
        self.lifecycle = lifecycle
        self.publisher = publisher
        self.leases = leases
        # the last applied definitions' errors by their text (`definition_errors`), each with its
        # file and experiment: the API's structured list beside the strings
        self.error_details: dict[str, DefinitionError] = {}

    def cancel_runs(self, gids: list[str]) -> list[str]:
        done = []
        for gid in gids:
            run = self.s.runs.get(gid)
            if run is None or run.status not in CANCEL.applies_to:
                continue
            if run.status == RunStatus.QUEUED:
                self.lifecycle.cancel_queued(run)
            else:
                self.stop_attempt(run, StopReason.CANCEL, "cancelled by the user")
            done.append(gid)
        return done

    def stop_attempt(self, run: RunState, reason: StopReason, detail: str) -> None:
        """Two-phase: the stop is committed, then an unclaimed attempt is fenced (it never
        starts) or the worker is told to stop the run's process group."""
        s = self.s
        self.lifecycle.record_stop(run, reason, detail)
        s.commit()
        if self.leases.fence_unclaimed(run.gid, run.attempt):
            self.lifecycle.end_attempt(run, 0, s.now(), True, detail, run.node)
            return
        spec = s.config.clusters.get(run.cluster)
        self.publisher.send_control(run.node or "", {"op": "stop", "global_id": run.gid, "attempt": run.attempt, "reason": detail,
                                                     "grace": spec.grace_period if spec else 30})

    def hold_runs(self, gids: list[str]) -> list[str]:
        """Queued runs become held (no demand); a live run is not stopped: it becomes held if it
        is interrupted later."""
        s = self.s
        done = []
        for gid in gids:
            run = s.runs.get(gid)
            if run is None or run.status not in HOLD.applies_to:
                continue
            if run.status == RunStatus.QUEUED:
                s.queue.remove(gid)
                run.status, run.reason = RunStatus.HELD, "held by the user"
                s.mark_run_dirty(run)
                s.batch.event(gid, "held", run.attempt, None, "held by the user")
            else:  # live
                run.hold_on_interrupt = True
            done.append(gid)
        s.dirty_placement = True
        return done

    def release_runs(self, gids: list[str]) -> list[str]:
        """Held runs go back to the queue."""
        s = self.s
        done = []
        for gid in gids:
            run = s.runs.get(gid)
            if run is None:
                continue
            run.hold_on_interrupt = False
            if run.status not in RELEASE.applies_to:
                continue
            run.status, run.reason, run.queued_at = RunStatus.QUEUED, None, s.now()
            s.mark_run_dirty(run)
            s.batch.event(gid, "released", run.attempt, None, "released by the user")
            self.lifecycle.enqueue(run)
            done.append(gid)
        s.dirty_placement = True
        return done

    def resume_runs(self, gids: list[str], completed: bool = False) -> list[str]:
        """The original's Resume: release held runs, requeue failed and cancelled ones (and,
        asked for, completed ones) with a fresh retry budget and the next attempt number."""
        done = self.release_runs(gids)
        finals = RESUME.statuses(completed) - RELEASE.applies_to
        return done + self.requeue_runs([g for g in gids if g not in done], finals)

    def requeue_runs(self, gids: list[str], finals: Collection[RunStatus] = REQUEUE.applies_to) -> list[str]:
        """FAILED or CANCELLED runs go back to QUEUED (a fresh retry budget), with the
        definition the store holds now."""
        s = self.s
        rows = s.store.runs_by_id(gids)
        done = []
        now = s.now()
        for gid in gids:
            row = rows.get(gid)
            if row is None or RunStatus(row.status) not in finals:
                continue
            run = RunState.from_row(row)
            run.status, run.reason, run.exit_code, run.ended_at = RunStatus.QUEUED, "requeued by the user", None, None
            run.retries_used, run.queued_at, run.node = 0, now, None
            s.runs[gid] = run
            s.final_status.pop(gid, None)
            s.mark_run_dirty(run)
            s.batch.event(gid, "requeued", run.attempt, None, "requeued by the user")
            self.lifecycle.enqueue(run)
            done.append(gid)
        s.dirty_placement = True
        return done

    def preview_stops(self, result) -> list[str]:  # type: ignore[no-untyped-def]
        """The live runs a reload would stop (nothing is applied)."""
        result = self._check_slots(result)
        return self.s.store.apply_definitions(result, hold_new=self.s.config.hold_new, dry_run=True).restart

    def _check_slots(self, result):  # type: ignore[no-untyped-def]
        """A run needing more slots than its cluster's nodes have is a definition error (here,
        where every cluster's num_slots is known)."""
        from juqueue.definitions.validation import check_run_slots

        return check_run_slots(result, {name: spec.num_slots for name, spec in self.s.config.clusters.items()})

    def apply_definitions(self, result) -> dict:  # type: ignore[no-untyped-def]
        """Apply a reload's result, then take new and changed queued runs into memory; live runs
        whose command, executor or cluster changed (or that left their file) are stopped and
        rerun with the new definition; other edits reach them without an interruption."""
        s = self.s
        result = self._check_slots(result)
        # queued_at from the controller's clock, read as the new runs are written: the same clock
        # stamps the attempt they are placed as in this batch, so queued -> published is one clock's
        summary = s.store.apply_definitions(result, hold_new=s.config.hold_new, clock=s.now)
        changed = set(summary.added) | set(summary.updated) | set(summary.undefined) | set(summary.redefined)
        rows = s.store.runs_by_id(changed)
        self.lifecycle.prefetch_statuses(d for row in rows.values() for d in json.loads(row.depends_on or "[]"))
        queued = []
        for gid, row in rows.items():
            if RunStatus(row.status) == RunStatus.QUEUED:
                s.runs[gid] = RunState.from_row(row)
                queued.append(s.runs[gid])
            elif RunStatus(row.status) == RunStatus.HELD:
                s.runs[gid] = RunState.from_row(row)  # in memory, so release and resume find it
            elif gid in s.runs:
                s.runs[gid].defined = row.defined
        for gid in summary.updated_live + summary.restart:
            run, row = s.runs.get(gid), rows.get(gid) or s.store.runs_by_id([gid]).get(gid)
            if run is None or row is None:
                continue
            run.traits, run.max_retries, run.defined = traits_of(row.spec_json), row.max_retries, row.defined
            if gid in summary.restart and run.status.is_live:
                why = "its definition changed" if row.defined else "it was removed from its definition file"
                self.stop_attempt(run, StopReason.REDEFINED, f"stopped: {why} (reload)")
        for run in queued:  # after all are in memory: they may depend on each other
            self.lifecycle.enqueue(run)
        s.definition_errors = [str(e) for e in result.errors]
        self.error_details = {str(e): e for e in result.errors}
        if self.budgets is not None:
            self.budgets.set_experiment_caps(dict(result.budgets), keep=set(result.failed_experiments))
        s.dirty_placement = True
        return {"added": summary.added, "updated": summary.updated, "undefined": summary.undefined,
                "stopped": summary.restart, "errors": s.definition_errors}

    def apply_clusters(self, clusters: dict[str, ClusterSpec]) -> dict[str, list[str]]:
        """A reloaded clusters.yaml: settings apply at once (slot counts and backend fields to
        nodes started from now on); a removed cluster's nodes drain, its queued runs wait."""
        s = self.s
        current = s.config.clusters
        added = sorted(set(clusters) - set(current))
        removed = sorted(set(current) - set(clusters))
        changed = sorted(n for n in set(clusters) & set(current) if clusters[n] != current[n])
        for name in removed:
            del current[name]
        current.update(clusters)
        for name in added:
            s.health.setdefault(name, ClusterHealth())
        for node in s.nodes.values():
            if node.cluster in removed and node.state in (NodeState.PENDING, NodeState.STARTING, NodeState.UP):
                node.state, node.reason = NodeState.DRAINING, "draining: its cluster was removed from clusters.yaml"
                s.mark_node_dirty(node)
        for run in list(s.runs.values()):
            if run.status == RunStatus.QUEUED and (run.cluster in removed or run.cluster in added):
                self.lifecycle.enqueue(run)
        s.dirty_placement = True
        return {"added": added, "changed": changed, "removed": removed}

    def adopt_original(self, statuses: dict[str, str]) -> list[str]:
        """Runs the original JuQueue knew (never run here yet) take its status: completed and
        failed runs are final (not rerun), held ones wait for release, queued ones run."""
        s = self.s
        done = []
        now = s.now()
        for gid, status in statuses.items():
            run = s.runs.get(gid)
            if run is None or run.attempt != 0 or run.status not in (RunStatus.QUEUED, RunStatus.HELD):
                continue
            target = RunStatus(status)
            if target == run.status:
                continue
            s.queue.remove(gid)
            run.status, run.reason = target, "status kept from the original JuQueue's work dir"
            if target.is_final:
                run.ended_at, run.exit_code = now, 0 if target == RunStatus.COMPLETED else None
            s.mark_run_dirty(run)
            s.batch.event(gid, target.value, None, None, "from the original JuQueue's juqueue-run.json")
            if target.is_final:
                self.lifecycle.on_final(run)
            else:
                self.lifecycle.enqueue(run)
            done.append(gid)
        s.dirty_placement = True
        return done
