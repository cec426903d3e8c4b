"""The controller's and workers' timings, in one frozen object.

Load order: the defaults below, then `JUQUEUE_*` environment variables, then explicit
overrides (`Settings.from_env(overrides)` or `dataclasses.replace`). `juqueue serve` hands the
result to the controller (its ControllerConfig, which passes the lease and silence times on
to every worker) and to the definition evaluation. Per-cluster `heartbeat_interval` and
`heartbeat_timeout` in clusters.yaml win over the heartbeat defaults here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from juqueue.errors import ConfigError

# field -> the environment variable that sets it
ENV_VARS: dict[str, str] = {
    "lease_ttl_s": "JUQUEUE_LEASE_TTL",
    "start_timeout_s": "JUQUEUE_START_TIMEOUT",
    "stop_escalate_s": "JUQUEUE_STOP_ESCALATE",
    "controller_silence_s": "JUQUEUE_CONTROLLER_SILENCE",
    "eval_timeout_s": "JUQUEUE_EVAL_TIMEOUT",
    "heartbeat_interval_s": "JUQUEUE_HEARTBEAT_INTERVAL",
    "heartbeat_timeout_s": "JUQUEUE_HEARTBEAT_TIMEOUT",
    "broker_grace_s": "JUQUEUE_BROKER_GRACE",
}


@dataclass(frozen=True)
class Settings:
    """Timings in seconds. Frozen: every thread may read it, nobody changes it under them."""

    lease_ttl_s: float = 120.0  # a worker that cannot renew its leases this long kills its runs
    start_timeout_s: float = 120.0  # a started node that never heartbeats is given up
    stop_escalate_s: float = 60.0  # a node that does not stop this long after being asked is ended
    controller_silence_s: float = 600.0  # workers end their node after this long without the controller
    eval_timeout_s: float = 60.0  # the definition evaluation subprocess is stopped after this long
    heartbeat_interval_s: float = 5.0  # for clusters that do not set heartbeat_interval
    heartbeat_timeout_s: float = 30.0  # for clusters that do not set heartbeat_timeout
    # the embedded broker, with no server and no live job this long, shuts down (its AOF kept):
    # long enough for a restarted `serve` to adopt it
    broker_grace_s: float = 300.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"setting {f.name} must be a number of seconds, not {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"setting {f.name} must be a positive number of seconds, not {value!r}")
        if self.controller_silence_s < 1:  # a Redis expiry in whole seconds
            raise ConfigError(f"setting controller_silence_s must be at least 1 s, not {self.controller_silence_s!r}")

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, then `JUQUEUE_*` variables, then `overrides` (field name -> seconds; None skips)."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise ConfigError(f"{var}={raw!r} is not a number of seconds") from None
            if not math.isfinite(values[name]) or values[name] <= 0 or (name == "controller_silence_s" and values[name] < 1):
                least = "at least 1" if name == "controller_silence_s" else "a positive number of"
                raise ConfigError(f"{var}={raw!r}: must be {least} seconds") from None
        settings = cls(**values)
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = sorted(set(given) - set(ENV_VARS))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(ENV_VARS)}")
        return replace(settings, **given) if given else settings

    def cluster_defaults(self) -> dict[str, float]:
        """The clusters.yaml keys these settings fill in for clusters that do not set them."""
        return {"heartbeat_interval": self.heartbeat_interval_s, "heartbeat_timeout": self.heartbeat_timeout_s}
