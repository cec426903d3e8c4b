"""Run lifecycle: an attempt ends (known, not guessed) and the run is decided; queued runs
become ready, wait on their dependencies, or fail with them."""

from __future__ import annotations

import logging
from typing import Iterable

from juqueue.controller.state import ControllerState, RunState
from juqueue.paths import read_json
from juqueue.policy.outcome import attempt_outcome, dependency_readiness
from juqueue.status import EndReason, RunStatus, StopReason

log = logging.getLogger(__name__)


class RunLifecycle:
    def __init__(self, state: ControllerState) -> None:
        self.s = state

    # ---------------------------------------------------------------- stops
    def record_stop(self, run: RunState, reason: StopReason, detail: str) -> None:
        """First phase of every stop: the reason is in the batch before any signal is sent.
        The stronger reason wins when one was recorded already."""
        winner = reason.stronger(run.stop_reason)
        if winner != run.stop_reason:
            run.stop_reason, run.stop_detail = winner, detail
        cols = self.s.attempt_columns(run)
        cols["stop_reason"] = run.stop_reason.value
        cols["stop_requested"] = run.stop_detail

    # ---------------------------------------------------------------- ends
    def end_attempt(self, run: RunState, exit_code: int, ended_at: float, interrupted: bool, why: str | None, node_name: str | None) -> None:
        """The current attempt is over: decide the run."""
        s = self.s
        if run.exit_pending is not None:
            s.pending_exits.get(run.exit_pending[2], set()).discard(run.gid)
        run.exit_pending = None
        node = s.nodes.get(run.node or "")
        said, run.exit_detail = run.exit_detail, None  # the worker's words on a non-zero exit
        if node is not None:
            node.release(run.gid)
            s.maybe_idle(node, s.now())
        cancelled = run.stop_reason == StopReason.CANCEL
        if cancelled:
            end_reason = EndReason.CANCELLED
        else:
            end_reason = EndReason.INTERRUPTED if interrupted else EndReason.EXITED
        s.attempt_columns(run).update(
            {"ended_at": ended_at, "exit_code": exit_code if run.started or not interrupted else None,
             "end_reason": end_reason.value, "interrupted_by": why if interrupted else None}
        )
        run.stop_reason = run.stop_detail = None
        run.pid = run.pstart = None
        run.started, run.started_ts, run.checkpoint_at = False, None, None
        if cancelled:
            run.status, run.reason, run.ended_at = RunStatus.CANCELLED, "cancelled by the user", ended_at
            run.exit_code = exit_code
            s.batch.event(run.gid, "cancelled", run.attempt, node_name, None, ended_at)
        else:
            outcome = attempt_outcome(exit_code, interrupted, run.retries_used, run.max_retries)
            if outcome.spends_retry:
                run.retries_used += 1
            run.status, run.reason = outcome.status, outcome.reason if not interrupted else f"interrupted: {why}"
            if not interrupted and exit_code != 0 and said:
                run.reason = f"{outcome.reason}: {said}"
            if outcome.status.is_final:
                run.exit_code, run.ended_at = exit_code, ended_at
            else:
                run.queued_at = s.now()
                if interrupted and run.hold_on_interrupt:
                    run.status, run.hold_on_interrupt = RunStatus.HELD, False
                    run.reason = f"held after an interruption: {why}"
            kind = {RunStatus.QUEUED: "requeued", RunStatus.HELD: "held"}.get(run.status, run.status.value)
            detail = f"exit code {exit_code}" if not interrupted else f"interrupted: {why} (exit code {exit_code})"
            if said and not interrupted and exit_code != 0:
                detail += f": {said}"
            s.batch.event(run.gid, kind, run.attempt, node_name, detail, ended_at)
        run.node = None if run.status in (RunStatus.QUEUED, RunStatus.HELD) else run.node
        if run.status != RunStatus.QUEUED:
            s.release_reservation(run)
            s.note_completed(run)
        s.mark_run_dirty(run)
        s.dirty_placement = True
        if run.status.is_final:
            self.on_final(run)
        else:
            self.enqueue(run)

    def settle_from_exit_file(self, run: RunState, now: float) -> bool:
        """An attempt's exit file (written by its worker beside the logs) settles it when the
        exit event was lost."""
        data = read_json(self.s.config.work.exit_file(run.experiment, run.run_id, run.attempt))
        if not data or data.get("attempt") not in (None, run.attempt):
            return False
        started = data.get("started_at")
        if not run.started and started is not None:
            # its `started` event was lost too (a broker reset): the start goes on record from here
            run.started_at = float(started)
            self.s.attempt_columns(run).update({"started_at": run.started_at, "node": data.get("node")})
            self.s.batch.event(run.gid, "running", run.attempt, data.get("node"), "from its exit file", run.started_at)
        interrupted = bool(data.get("interrupted")) or (run.stop_reason not in (None, StopReason.MOVE))
        self.end_attempt(run, int(data["exit_code"]), float(data.get("ended_at") or now), interrupted,
                         run.stop_detail or "exit file", data.get("node"))
        return True

    def on_final(self, run: RunState) -> None:
        """A run ended for good: only its own dependents are touched."""
        s = self.s
        s.queue.remove(run.gid)
        s.final_status[run.gid] = run.status
        s.finalized.add(run.gid)
        for gid in s.queue.waiting_on(run.gid):
            waiting = s.runs.get(gid)
            if waiting is None:
                continue
            if run.status == RunStatus.COMPLETED:
                self.enqueue(waiting)
            else:
                self.fail_run(waiting, f"dependency {run.gid} {run.status.value}")

    def fail_run(self, run: RunState, reason: str) -> None:
        run.status, run.reason, run.ended_at = RunStatus.FAILED, reason, self.s.now()
        self.s.batch.event(run.gid, "failed", run.attempt, None, reason)
        self.s.mark_run_dirty(run)
        self.on_final(run)

    def cancel_queued(self, run: RunState) -> None:
        run.status, run.reason, run.ended_at = RunStatus.CANCELLED, "cancelled by the user", self.s.now()
        self.s.batch.event(run.gid, "cancelled", run.attempt, None, "cancelled by the user")
        self.s.mark_run_dirty(run)
        self.on_final(run)

    # ---------------------------------------------------------------- readiness
    def dep_status(self, gid: str) -> RunStatus | None:
        s = self.s
        run = s.runs.get(gid)
        if run is not None:
            return run.status
        if gid not in s.final_status:
            self.prefetch_statuses([gid])
        if gid in s.final_status:
            return s.final_status[gid]
        return s.store.statuses([gid]).get(gid)

    def prefetch_statuses(self, gids: Iterable[str]) -> None:
        s = self.s
        missing = {g for g in gids if g not in s.runs and g not in s.final_status}
        for gid, status in s.store.statuses(missing).items():
            if status.is_final:
                s.final_status[gid] = status

    def enqueue(self, run: RunState) -> None:
        """A QUEUED run becomes ready (placement), waits on its dependencies, or fails with them."""
        s = self.s
        s.queue.remove(run.gid)
        if run.status != RunStatus.QUEUED or not run.defined:
            return
        if run.depends_on:
            statuses = {d: self.dep_status(d) for d in run.depends_on}
            readiness = dependency_readiness(statuses)
            if readiness.failed_reason:
                self.fail_run(run, readiness.failed_reason)
                return
            if not readiness.ready:
                s.queue.add_waiting(run.gid, {d for d, st in statuses.items() if st != RunStatus.COMPLETED})
                return
        if run.cluster not in s.config.clusters:
            self.set_wait_reason(run, f"waiting: cluster {run.cluster!r} is not in clusters.yaml")
            return
        s.queue.add_ready(run.gid, run.cluster, run.slots, run.queue_key())
        s.dirty_placement = True

    def set_wait_reason(self, run: RunState, reason: str | None) -> None:
        if run.reason != reason:
            run.reason = reason
            self.s.mark_run_dirty(run)
