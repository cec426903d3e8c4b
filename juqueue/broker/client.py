"""redis-py clients with explicit timeouts (redis-py 8 defaults to 5 s and RESP3)."""

from __future__ import annotations

import redis


def make_redis(url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        protocol=2,
        decode_responses=True,
    )
