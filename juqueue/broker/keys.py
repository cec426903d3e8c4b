"""Every Redis key and queue name JuQueue uses, in one place.

Keys are prefixed with the work dir's namespace so two JuQueue instances may share one
broker (the test machine's shared Redis, a site Redis) without seeing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str  # short, stable per work dir

    def _k(self, *parts: str) -> str:
        return ":".join(("jq", self.namespace, *parts))

    @property
    def events(self) -> str:
        """Stream workers XADD run events to; read by the controller's consumer group."""
        return self._k("events")

    @property
    def events_group(self) -> str:
        return "controller"

    @property
    def generation(self) -> str:
        """Set by the controller at start; its absence means Redis came back empty or stale."""
        return self._k("generation")

    @property
    def controller_alive(self) -> str:
        """Refreshed on every tick; workers with no run exit when it is gone long enough."""
        return self._k("controller", "alive")

    @property
    def tick_lock(self) -> str:
        return self._k("controller", "tick-lock")

    def current_attempt(self, global_id: str) -> str:
        """The attempt number the controller wants to run; a message for any other is dropped."""
        return self._k("run", global_id, "current")

    def spec(self, global_id: str) -> str:
        """The current attempt's command and environment: kept out of Celery messages, which
        Flower and `celery inspect` show; handed to the worker by its claim."""
        return self._k("run", global_id, "spec")

    def lease(self, global_id: str) -> str:
        """Holds "<attempt>|<node>" with a TTL while an attempt lives."""
        return self._k("run", global_id, "lease")

    def node_control(self, node: str) -> str:
        """List of control commands (stop an attempt, drain, shut down) for one node."""
        return self._k("node", node, "control")

    def node_queue(self, node: str) -> str:
        """Celery queue a node's worker consumes."""
        return f"jq.{self.namespace}.{node}"

    @property
    def tick_queue(self) -> str:
        """Celery queue beat publishes reconcile ticks to; the controller drains it."""
        return f"jq.{self.namespace}.ticks"


def queue_depth_keys(queue: str) -> list[str]:
    """kombu's Redis transport keeps priorities in sibling lists; depth is their sum."""
    return [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)]
