"""The controller's inbox on Redis: the run-event stream (consumer group), the beat ticks,
and the generation key that tells the controller whether Redis still holds its state.

Entries are acknowledged only after the store has committed what they said; unacknowledged
entries are read again (`read(pending=True)`) after a restart or a failed commit.
"""

from __future__ import annotations

import secrets

import redis

from juqueue.broker.keys import Keys
from juqueue.events import WAKE, Event


class EventStream:
    def __init__(self, client: redis.Redis, keys: Keys, consumer: str = "controller") -> None:
        self.client = client
        self.keys = keys
        self.consumer = consumer

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.keys.events, self.keys.events_group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, pending: bool, block_ms: int | None, count: int) -> list[tuple[str, dict[str, str]]]:
        """Entries delivered but not acknowledged (`pending`), or new ones (blocking up to `block_ms`)."""
        resp = self.client.xreadgroup(
            self.keys.events_group, self.consumer, {self.keys.events: "0" if pending else ">"}, count=count, block=block_ms
        )
        if not resp:
            return []
        return list(resp[0][1])

    def ack(self, ids: list[str]) -> None:
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.keys.events, self.keys.events_group, *ids)
        pipe.xdel(self.keys.events, *ids)
        pipe.execute()

    def wake(self, now: float) -> None:
        """Make a blocking read return at once (the API queued a command)."""
        try:
            self.client.xadd(self.keys.events, Event(type=WAKE, ts=now).encode())
        except redis.RedisError:
            pass

    def take_ticks(self) -> int:
        """How many beat ticks arrived since the last call (they are consumed)."""
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(self.keys.tick_queue)
            pipe.delete(self.keys.tick_queue)
            return int(pipe.execute()[0])
        except redis.RedisError:
            return 0


class Generation:
    """A rolling value the controller sets in Redis: if Redis answers with anything else, it
    was flushed, restarted empty or came back from an old AOF, and the controller rebuilds
    Redis's view from the store. Each advance also refreshes the key idle workers watch."""

    def __init__(self, client: redis.Redis, keys: Keys, silence_s: float) -> None:
        self.client = client
        self.keys = keys
        self.silence_s = silence_s
        self.value = ""

    def reset(self, now: float, pipe: redis.client.Pipeline | None = None) -> None:
        self.value = f"{secrets.token_hex(6)}:{int(now)}"
        target = pipe if pipe is not None else self.client
        target.set(self.keys.generation, self.value)
        target.set(self.keys.controller_alive, str(now), ex=int(self.silence_s))

    def advance(self, now: float) -> bool:
        """True while Redis still holds what this controller set; False once it lost it."""
        new = f"{self.value.split(':')[0]}:{int(now)}"
        seen = self.client.set(self.keys.generation, new, get=True)
        if seen != self.value:
            return False
        self.value = new
        self.client.set(self.keys.controller_alive, str(now), ex=int(self.silence_s))
        return True
