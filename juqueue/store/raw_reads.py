"""Reads of a store without opening it as `Store`: raw SQL that works on every schema version.

The work-dir migration must know which nodes an earlier release left live before anything moves,
and `Store` (through `make_engine`) upgrades the schema first, so the store is read here as it
is: any schema version that has a `nodes` table, SQLite or PostgreSQL, read-only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LiveNode:
    """A node the store lists as live (state not gone/failed)."""

    name: str
    backend: str
    state: str
    job_id: str | None
    token: str
    pid: int | None


def live_nodes_in_store(url: str) -> list[LiveNode]:
    """Nodes the store lists as live (state not gone/failed); [] without a nodes table."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table("nodes"):
                return []
            rows = conn.execute(sqlalchemy.text(
                "SELECT name, backend, state, job_id, token, pid FROM nodes WHERE state NOT IN ('gone', 'failed')")).all()
    finally:
        engine.dispose()
    return [LiveNode(name=r[0], backend=r[1], state=r[2], job_id=r[3], token=r[4] or "", pid=r[5]) for r in rows]


__all__ = ["LiveNode", "live_nodes_in_store"]
