"""Where a simulation's workload and cluster come from: a def dir (clusters.yaml and the runs'
expected durations), a work dir's store (the recorded attempts, read-only), a CSV file of
durations. Every failure is one SimulationInputError naming the file, line, run or cluster."""

from __future__ import annotations

import csv
import json
import sqlite3
import statistics
from collections.abc import Iterable
from pathlib import Path

from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError
from juqueue.paths import LegacyWorkDir, WorkDir
from juqueue.policy.duration import parse_duration
from juqueue.simulate.distributions import SimulationInputError
from juqueue.simulate.workload import NodeLatency, SimRun, Workload

CSV_COLUMNS = ("id", "duration", "expected", "arrival", "slots", "movable", "experiment")


# ---------------------------------------------------------------------- clusters
def load_cluster_specs(def_dir: Path) -> dict[str, ClusterSpec]:
    from juqueue.definitions.clusters import load_clusters

    try:
        return load_clusters(Path(def_dir) / "clusters.yaml")
    except ConfigError as exc:
        raise SimulationInputError(str(exc)) from None


def pick_cluster(specs: dict[str, ClusterSpec], name: str | None, used: Iterable[str], where: str) -> ClusterSpec:
    """The named cluster, else the one cluster the runs use (or the only one defined)."""
    if name is not None:
        if name not in specs:
            raise SimulationInputError(f"no cluster {name!r} in {where}; known: {', '.join(sorted(specs)) or 'none'}")
        return specs[name]
    names = sorted(set(used) & set(specs)) or sorted(specs)
    if len(names) != 1:
        raise SimulationInputError(f"the runs use clusters {', '.join(names)} ({where}): pick one with --cluster")
    return specs[names[0]]


# ---------------------------------------------------------------------- def dir
def load_def_dir(def_dir: Path, cluster: str | None, default_duration_s: float | None) -> tuple[ClusterSpec, Workload]:
    """The runs of one cluster of a def dir, each with its `duration:` (what the controller
    expects it to need, and here also what it needs). Runs without one: an error that says how
    many, unless `default_duration_s` is given (then they take it and the policy is not told)."""
    from juqueue.definitions.subprocess_eval import load_definitions

    def_dir = Path(def_dir)
    specs = load_cluster_specs(def_dir)
    if cluster is not None:
        pick_cluster(specs, cluster, (), str(def_dir / "clusters.yaml"))
    result = load_definitions(def_dir, set(specs))
    if result.errors:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise SimulationInputError(f"{result.errors[0]}{more}")
    spec = pick_cluster(specs, cluster, (r.cluster for r in result.runs), str(def_dir))
    specs_of = [r for r in result.runs if r.cluster == spec.name]
    if not specs_of:
        raise SimulationInputError(f"{def_dir}: no runs on cluster {spec.name!r}")
    missing = [r for r in specs_of if r.duration is None]
    if missing and default_duration_s is None:
        raise SimulationInputError(
            f"{len(missing)} of {len(specs_of)} runs of cluster {spec.name!r} have no duration (first: "
            f"{missing[0].global_id}): give them `duration:` or pass --default-duration S")
    runs = tuple(SimRun(r.global_id, r.duration if r.duration is not None else float(default_duration_s or 0.0),
                        expected_s=r.duration, movable=r.movable, depends_on=tuple(r.depends_on),
                        experiment=r.experiment, slots=getattr(r, "slots", 1))
                 for r in specs_of)
    notes = []
    if missing:
        notes.append(f"{len(missing)} of {len(runs)} runs have no duration: simulated as {default_duration_s:g} s each "
                     "(--default-duration; the policy is not told)")
    held = sum(1 for r in specs_of if getattr(r, "hold", False))
    if held:
        notes.append(f"{held} run(s) defined with `hold: true` are simulated as released")
    return spec, Workload(runs, "; ".join(notes))


# ---------------------------------------------------------------------- work dir
def store_path(work_dir: Path) -> Path:
    """The store of a work dir: `W/.juqueue/juqueue.db`, or `W/juqueue.db` of the earlier layout."""
    for path in (WorkDir(Path(work_dir)).db_file, LegacyWorkDir(Path(work_dir)).db_file):
        if path.is_file():
            return path
    raise SimulationInputError(f"--from-work-dir {work_dir}: no store there (looked for "
                               f"{WorkDir(Path(work_dir)).db_file} and {LegacyWorkDir(Path(work_dir)).db_file})")


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only. A store no `serve` has open (no -wal file) is opened immutable, so that not even
    SQLite's shared-memory file is created beside it."""
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True)
        conn.execute("SELECT 1 FROM runs LIMIT 1")
    except sqlite3.Error as exc:
        raise SimulationInputError(f"{path}: cannot read the store ({exc})") from None
    conn.row_factory = sqlite3.Row
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def load_work_dir(work_dir: Path, cluster: str | None) -> tuple[ClusterSpec | None, Workload]:
    """The recorded attempts of one cluster of a work dir, replayed (the store is opened read-only).

    - A run's duration is the sum of its attempts' run times (started_at to ended_at): interrupted
      attempts count, as if its checkpoints kept everything. Runs with no finished attempt, or
      one still running, are left out (counted in the note).
    - It arrives when it was defined (its first `defined` event), counted from the creation of
      the cluster's first node (a run defined earlier arrives at 0); its `duration:` (if any) is
      what the policy is told, as in the controller; `movable`, `slots` and dependencies too.
    - Nodes: the n-th node the simulation submits gets the n-th recorded node's latencies (then
      again from the first): queue wait = billing start (`billed_from`, else `started_at`) minus
      creation, boot = its first attempt's start minus its billing start.
    - The cluster's settings: the newest node's `node.json` (what that node was started with);
      None when no node file is left (give --def-dir or --num-slots/--max-jobs)."""
    path = store_path(work_dir)
    conn = _connect(path)
    try:
        clusters = [r[0] for r in conn.execute("SELECT DISTINCT cluster FROM runs ORDER BY cluster")]
        if cluster is None:
            active = [r[0] for r in conn.execute("SELECT DISTINCT r.cluster FROM runs r JOIN attempts a "
                                                 "ON a.global_id = r.global_id WHERE a.started_at IS NOT NULL")]
            if len(active) != 1:
                raise SimulationInputError(f"{path}: runs ran on clusters {', '.join(sorted(active)) or 'none'}: "
                                           "pick one with --cluster")
            cluster = active[0]
        elif cluster not in clusters:
            raise SimulationInputError(f"{path}: no runs on cluster {cluster!r}; known: {', '.join(clusters) or 'none'}")
        latencies, first_created = _node_latencies(conn, cluster)
        runs, skipped = _recorded_runs(conn, cluster, first_created)
        spec = _recorded_spec(Path(work_dir), conn, cluster)
    finally:
        conn.close()
    if not runs:
        raise SimulationInputError(f"{path}: no finished attempt on cluster {cluster!r}")
    note = f"{skipped} run(s) without a finished attempt left out" if skipped else ""
    return spec, Workload(tuple(runs), note, tuple(latencies))


def _node_latencies(conn: sqlite3.Connection, cluster: str) -> tuple[list[NodeLatency], float | None]:
    billed = "billed_from" in _columns(conn, "nodes")
    rows = conn.execute(
        f"SELECT n.name, n.created_at, n.started_at, {'n.billed_from' if billed else 'NULL'} AS billed_from, "
        "(SELECT MIN(a.started_at) FROM attempts a WHERE a.node = n.name) AS first_start "
        "FROM nodes n WHERE n.cluster = ? ORDER BY n.created_at, n.name", (cluster,)).fetchall()
    if not rows:
        return [], None
    boots = [max(0.0, r["first_start"] - (r["billed_from"] or r["started_at"]))
             for r in rows if r["first_start"] is not None and (r["billed_from"] or r["started_at"]) is not None]
    typical_boot = statistics.median(boots) if boots else 0.0
    out = []
    for r in rows:
        start = r["billed_from"] if r["billed_from"] is not None else r["started_at"]
        if start is None:
            continue  # never started (cancelled while pending): no latency to replay
        boot = max(0.0, r["first_start"] - start) if r["first_start"] is not None else typical_boot
        out.append(NodeLatency(queue_s=max(0.0, start - r["created_at"]), boot_s=boot))
    return out, min(r["created_at"] for r in rows)


def _recorded_runs(conn: sqlite3.Connection, cluster: str, t0: float | None) -> tuple[list[SimRun], int]:
    times: dict[str, float] = {}
    open_attempt: set[str] = set()
    for row in conn.execute("SELECT a.global_id, a.started_at, a.ended_at FROM attempts a JOIN runs r "
                            "ON r.global_id = a.global_id WHERE r.cluster = ? AND a.started_at IS NOT NULL", (cluster,)):
        if row["ended_at"] is None:
            open_attempt.add(row["global_id"])
        else:
            times[row["global_id"]] = times.get(row["global_id"], 0.0) + max(0.0, row["ended_at"] - row["started_at"])
    defined = {row[0]: row[1] for row in conn.execute(
        "SELECT e.global_id, MIN(e.ts) FROM events e JOIN runs r ON r.global_id = e.global_id "
        "WHERE r.cluster = ? GROUP BY e.global_id", (cluster,))}
    runs_rows = conn.execute("SELECT global_id, experiment, spec_json, depends_on, queued_at FROM runs "
                             "WHERE cluster = ? ORDER BY queued_at, global_id", (cluster,)).fetchall()
    runs, skipped = [], 0
    for row in runs_rows:
        gid = row["global_id"]
        if gid not in times or gid in open_attempt:
            skipped += 1
            continue
        spec = json.loads(row["spec_json"] or "{}")
        born = defined.get(gid, row["queued_at"])
        arrival = max(0.0, born - t0) if born is not None and t0 is not None else 0.0
        expected = spec.get("duration")
        runs.append(SimRun(gid, times[gid], expected_s=float(expected) if expected is not None else None, arrival_s=arrival,
                           movable=bool(spec.get("movable", True)), depends_on=tuple(json.loads(row["depends_on"] or "[]")),
                           experiment=row["experiment"], slots=int(spec.get("slots", 1) or 1)))
    return runs, skipped


def _recorded_spec(work_dir: Path, conn: sqlite3.Connection, cluster: str) -> ClusterSpec | None:
    names = [r[0] for r in conn.execute("SELECT name FROM nodes WHERE cluster = ? ORDER BY created_at DESC", (cluster,))]
    for layout in (WorkDir(work_dir), LegacyWorkDir(work_dir)):
        nodes_dir = layout.nodes_dir if isinstance(layout, WorkDir) else layout.root / "nodes"
        for name in names:
            try:
                data = json.loads((nodes_dir / name / "node.json").read_text())
                return ClusterSpec.model_validate(data["cluster"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return None


# ---------------------------------------------------------------------- CSV
def load_durations_csv(path: Path) -> Workload:
    """Runs from a CSV file: a header naming `duration` (required; seconds or HH:MM:SS) and any
    of `id`, `expected` (what the policy is told; empty: unknown), `arrival` (seconds after the
    start), `slots`, `movable` (true/false), `experiment`; or no header and one duration per line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimulationInputError(f"--durations {path}: {exc.strerror or exc}") from None
    rows = list(csv.reader(text.splitlines()))
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and any(cell.strip() for cell in row)]
    if not numbered:
        raise SimulationInputError(f"{path}: no runs")
    first = [cell.strip().lower() for cell in numbered[0][1]]
    if "duration" in first:
        header, numbered = first, numbered[1:]
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if unknown:
            raise SimulationInputError(f"{path} line 1: unknown column {unknown[0]!r} (known: {', '.join(CSV_COLUMNS)})")
    else:
        header = ["duration"]
    runs = []
    width = len(str(len(numbered)))
    for n, (line, row) in enumerate(numbered):
        cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        where = f"{path} line {line}"
        gid = cells.get("id") or f"{cells.get('experiment') or 'csv'}@r{n:0{width}d}"
        try:
            runs.append(SimRun(gid, _seconds(cells.get("duration", ""), where, "duration"),
                               expected_s=_seconds(cells["expected"], where, "expected") if cells.get("expected") else None,
                               arrival_s=_seconds(cells["arrival"], where, "arrival") if cells.get("arrival") else 0.0,
                               slots=_whole(cells.get("slots") or "1", where),
                               movable=_flag(cells.get("movable") or "true", where),
                               experiment=cells.get("experiment") or (gid.split("@")[0] if "@" in gid else "csv")))
        except SimulationInputError as exc:
            if str(exc).startswith(where):
                raise
            raise SimulationInputError(f"{where}: {exc}") from None
    ids = [r.gid for r in runs]
    if len(set(ids)) != len(ids):
        dup = next(g for g in ids if ids.count(g) > 1)
        raise SimulationInputError(f"{path}: run id {dup!r} appears twice")
    return Workload(tuple(runs))


def _seconds(value: str, where: str, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = None
    try:
        return parse_duration(number if number is not None else value)
    except ValueError:
        raise SimulationInputError(f"{where}: {column} {value!r}: expected seconds (a number >= 0) or HH:MM:SS") from None


def _whole(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SimulationInputError(f"{where}: slots {value!r}: expected a whole number") from None


def _flag(value: str, where: str) -> bool:
    low = value.lower()
    if low in ("true", "yes", "1"):
        return True
    if low in ("false", "no", "0"):
        return False
    raise SimulationInputError(f"{where}: movable {value!r}: expected true or false")
