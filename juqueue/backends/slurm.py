"""`slurm` nodes: one SLURM job each, running one Celery worker.

SLURM is asked about all of JuQueue's jobs in one `squeue` call at most once per
`poll_interval`; heartbeats give liveness in between. A job's token (committed in the
store before `sbatch`) is in its name and comment, so a restarted controller recognises
exactly its own jobs and leaves every other job alone.
"""

from __future__ import annotations

import logging
import time

from juqueue.backends.base import BackendError, NodeLiveness, StartedNode
from juqueue.backends.slurm_commands import SlurmCommandError, cancel_job, job_end_time, list_jobs, submit_job
from juqueue.backends.slurm_parse import SlurmJob, job_is_gone
from juqueue.backends.slurm_script import job_comment_for, job_name_for, render_job_script
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir, write_atomic

log = logging.getLogger(__name__)


class SlurmBackend:
    kind = "slurm"
    dies_with_server = False
    loss_confirmed_by_scheduler = True
    exit_settle_s = 2.0

    def __init__(self, work: WorkDir, poll_interval_s: float = 30.0, name_prefix: str = "") -> None:
        self.work = work
        self.poll_interval_s = poll_interval_s
        self.name_prefix = name_prefix
        self._jobs: dict[str, SlurmJob] = {}
        self._polled_at = 0.0
        self._submitted_at: dict[str, float] = {}

    def render(self, cluster: ClusterSpec, node: str, token: str) -> str:
        return render_job_script(cluster, node=node, token=token, work_dir=self.work.root,
                                 log_path=self.work.node_dir(node) / "job.log")

    def start_node(self, cluster: ClusterSpec, node: str, token: str) -> StartedNode:
        node_dir = self.work.node_dir(node)
        node_dir.mkdir(parents=True, exist_ok=True)
        script = self.render(cluster, node, token)
        write_atomic(node_dir / "job.sh", script, mode=0o700)
        try:
            job_id = submit_job(script, job_name=job_name_for(cluster, node, token), comment=job_comment_for(token),
                                workdir=node_dir, output=node_dir / "job.log")
        except SlurmCommandError as exc:
            raise BackendError(str(exc)) from exc
        self._submitted_at[job_id] = time.time()
        return StartedNode(job_id=job_id)

    def kill_run_group(self, pid: int, start_time: int | None) -> None:
        """The job's end kills every process of the job; nothing here can reach a compute node."""

    def recorded_end(self, job_id: str | None) -> float | None:
        return job_end_time(job_id) if job_id else None

    def stop_node(self, node: str, job_id: str | None, pid: int | None) -> None:
        if not job_id:
            return
        try:
            cancel_job(job_id)
        except SlurmCommandError as exc:
            log.warning("scancel %s failed: %s", job_id, exc)

    def _poll(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._polled_at < self.poll_interval_s:
            return
        jobs = list_jobs(self.name_prefix)
        self._jobs = {job.job_id: job for job in jobs}
        self._polled_at = now

    def liveness(self, nodes: dict[str, tuple[str | None, int | None]]) -> dict[str, NodeLiveness]:
        try:
            self._poll()
        except SlurmCommandError as exc:
            log.warning("squeue failed; keeping the last view: %s", exc)
        out: dict[str, NodeLiveness] = {}
        for name, (job_id, _pid) in nodes.items():
            if job_id is None:
                out[name] = NodeLiveness(alive=False, reason="no job id")
                continue
            job = self._jobs.get(job_id)
            if job is None:
                if self._submitted_at.get(job_id, 0) > self._polled_at:
                    out[name] = NodeLiveness(alive=True, reason="submitted")  # not yet in our last view
                else:
                    out[name] = NodeLiveness(alive=False, reason=f"job {job_id} is no longer in squeue")
                continue
            if name not in job.name:
                out[name] = NodeLiveness(alive=False, reason=f"job {job_id} belongs to something else now ({job.name})")
            elif job_is_gone(job.state):
                out[name] = NodeLiveness(alive=False, reason=f"job {job_id} {job.state.lower()} ({job.reason or 'no reason given'})",
                                         started_at=job.start_time)
            else:
                out[name] = NodeLiveness(alive=True, reason=job.state, time_left_s=job.time_left_s, started_at=job.start_time)
        return out
