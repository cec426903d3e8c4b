"""The store read as it is, in any schema version: the nodes an earlier release left live."""

from __future__ import annotations

import sqlite3

from juqueue.paths import LegacyWorkDir
from juqueue.store.raw_reads import live_nodes_in_store
from workdir_fixtures import old_layout


def test_live_nodes_in_store_reads_states(tmp_path):
    root = old_layout(tmp_path / "w", nodes=[("a", "slurm", "up", "1"), ("b", "slurm", "failed", "2"), ("c", "local", "draining", None)])
    live = live_nodes_in_store(f"sqlite:///{LegacyWorkDir(root).db_file}")
    assert sorted((n.name, n.backend, n.state) for n in live) == [("a", "slurm", "up"), ("c", "local", "draining")]
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert live_nodes_in_store(f"sqlite:///{empty}") == []
