"""The controller's settings and its per-cluster submission health."""

from __future__ import annotations

from dataclasses import dataclass

from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.settings import Settings


@dataclass
class ControllerConfig:
    work: WorkDir
    clusters: dict[str, ClusterSpec]
    tick_interval_s: float = 2.0
    # the timings' defaults are Settings' (`serve` passes its Settings; tests may set them here)
    lease_ttl_s: float = Settings.lease_ttl_s
    controller_silence_s: float = Settings.controller_silence_s
    coalesce_s: float = 0.02
    start_timeout_s: float = Settings.start_timeout_s  # a started node that never heartbeats is given up
    max_start_failures: int = 3  # then submission to that cluster pauses with the reason
    read_count: int = 5000
    stop_escalate_s: float = Settings.stop_escalate_s
    task_events: bool = False  # workers send Celery task events (Flower's task view)
    store_retry_max_s: float = 5.0  # back-off ceiling while the store refuses commits
    hold_new: bool = False  # `serve --hold-new`: every run that first appears is held
    # for a node whose cluster left clusters.yaml (clusters that set none get these from `serve`'s Settings)
    heartbeat_interval_s: float = Settings.heartbeat_interval_s
    heartbeat_timeout_s: float = Settings.heartbeat_timeout_s


@dataclass
class ClusterHealth:
    """Failed node starts pause a cluster's submission with a visible reason and a back-off."""

    start_failures: int = 0
    paused_reason: str | None = None
    paused_until: float = 0.0
    work_dir_failures: int = 0  # attempts the work dir refused since the last good start
    device_probes: int = 0  # nodes started for runs that need CUDA devices no live node has
    devices_missing: bool = False  # a node reported no CUDA devices; cleared when a run that needs them starts

    @property
    def placement_blocked(self) -> bool:
        """A work dir that refuses writes stops placement too, not only submission."""
        return self.paused_reason is not None and self.work_dir_failures > 0

    def work_dir_failed(self, reason: str, now: float) -> None:
        """Pause the cluster: attempts would only be interrupted again. Retried after a
        back-off (2 s doubling to 60 s); a start that succeeds lifts the pause."""
        self.work_dir_failures += 1
        self.pause(reason, now, min(60.0, 2.0 * 2 ** (self.work_dir_failures - 1)))

    def attempt_started(self) -> None:
        if self.work_dir_failures:
            self.work_dir_failures = 0
            self.paused_reason = None

    def start_failed(self, reason: str, now: float, max_failures: int) -> bool:
        """Count a failed start; True when this one paused the cluster."""
        self.start_failures += 1
        if self.start_failures < max_failures:
            return False
        backoff = min(600.0, 30.0 * 2 ** (self.start_failures - max_failures))
        self.paused_reason = f"{self.start_failures} node starts failed; last: {reason}"
        self.paused_until = now + backoff
        return True

    def pause(self, reason: str, now: float, backoff_s: float) -> None:
        self.paused_reason = reason
        self.paused_until = now + backoff_s

    def resume_if_due(self, now: float) -> bool:
        if self.paused_reason and now >= self.paused_until:
            self.paused_reason = None
            return True
        return False

