"""The attempt claim and lease: at most one live attempt per run.

The controller sets a run's `current` key to the attempt it wants; a worker starts an
attempt only after claiming it here, renews the lease while the run lives, and stops its
run once the lease names another attempt.
"""

from __future__ import annotations

import redis

from juqueue.broker.keys import Keys

# KEYS: current, lease, spec; ARGV: attempt, lease value, ttl ms. Returns the spec on success.
# Idempotent for the same node (a client retry after a lost reply must not drop the run);
# a lease of the same attempt held by another node refuses.
_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[2] and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return redis.call('GET', KEYS[3]) or ''
"""

# KEYS: lease, current; ARGV: lease value, ttl ms, attempt
_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then return 0 end
local want = redis.call('GET', KEYS[2])
if want and want ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
"""

# KEYS: lease; ARGV: lease value
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: current, lease; ARGV: attempt. Fence an attempt that has not been claimed.
_FENCE_UNCLAIMED = """
local cur = redis.call('GET', KEYS[2])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then return 0 end
redis.call('SET', KEYS[1], 'fenced')
return 1
"""


def lease_value(attempt: int, node: str) -> str:
    return f"{attempt}|{node}"


class Leases:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._fence = client.register_script(_FENCE_UNCLAIMED)

    def claim(self, global_id: str, attempt: int, node: str, ttl_s: float) -> str | None:
        """The attempt's spec (JSON) when this worker now holds it; None when it may not run."""
        keys = [self.keys.current_attempt(global_id), self.keys.lease(global_id), self.keys.spec(global_id)]
        result = self._claim(keys=keys, args=[attempt, lease_value(attempt, node), int(ttl_s * 1000)])
        return result if isinstance(result, str) else None

    def renew_many(self, items: list[tuple[str, int]], node: str, ttl_s: float) -> dict[tuple[str, int], int]:
        """Renew in one round trip; result per attempt: 1 renewed, 2 re-asserted, 0 lost.

        In a pipeline the scripts go as EVAL (Redis keeps them compiled by their hash): a
        registered script in a pipeline costs redis-py an extra round trip (SCRIPT EXISTS)
        on every execute."""
        pipe = self.client.pipeline(transaction=False)
        for gid, attempt in items:
            pipe.eval(_RENEW, 2, self.keys.lease(gid), self.keys.current_attempt(gid),
                      lease_value(attempt, node), int(ttl_s * 1000), attempt)
        return dict(zip(items, pipe.execute()))

    def release(self, global_id: str, attempt: int, node: str, client: object = None) -> None:
        if client is None:
            self._release(keys=[self.keys.lease(global_id)], args=[lease_value(attempt, node)])
        else:  # in the caller's pipeline (see `renew_many`)
            client.eval(_RELEASE, 1, self.keys.lease(global_id), lease_value(attempt, node))  # type: ignore[attr-defined]

    def fence_unclaimed(self, global_id: str, attempt: int) -> bool:
        """True when the attempt was not claimed and now never can be."""
        keys = [self.keys.current_attempt(global_id), self.keys.lease(global_id)]
        return self._fence(keys=keys, args=[attempt]) == 1

    def fence(self, global_id: str) -> None:
        """No attempt of this run may start any more (until the next publish names one)."""
        self.client.set(self.keys.current_attempt(global_id), "fenced")

    def set_current_many(self, attempts: dict[str, int]) -> None:
        """Name the attempt each run may run (after Redis lost its state), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for gid, attempt in attempts.items():
            pipe.set(self.keys.current_attempt(gid), attempt)
        pipe.execute()

    def holder(self, global_id: str) -> str | None:
        return self.client.get(self.keys.lease(global_id))
