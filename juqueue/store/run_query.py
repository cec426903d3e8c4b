"""Which runs a list or a selection is about: the runs list's filter and sort order, as SQL.

The API's `GET /api/runs`, the run verbs' `filter` and the CLI's `runs` share this filter, so
"every failed run of experiment X on node Y" means the same everywhere. This module only
builds expressions; `Store` (the one module that reads tables) executes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, literal, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from juqueue.status import RunStatus
from juqueue.store.tables import RunRow

STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in RunStatus)
# A field of the run's JSON shape (`run_to_dict`) -> its column; `id` is the run id.
SORT_COLUMNS: dict[str, Any] = {
    "experiment": RunRow.experiment, "id": RunRow.run_id, "global_id": RunRow.global_id, "status": RunRow.status,
    "attempt": RunRow.attempt, "exit_code": RunRow.exit_code, "node": RunRow.node, "cluster": RunRow.cluster,
    "queued_at": RunRow.queued_at, "started_at": RunRow.started_at, "ended_at": RunRow.ended_at,
    "reason": RunRow.reason, "defined": RunRow.defined, "depends_on": RunRow.depends_on,
    "retries_used": RunRow.retries_used, "max_retries": RunRow.max_retries,
}
_NULLABLE = {"exit_code", "node", "reason", "queued_at", "started_at", "ended_at"}


class RunQueryError(ValueError):
    """A filter or sort order naming something that does not exist (the API answers 422)."""


@dataclass(frozen=True)
class RunFilter:
    """Runs with any of `statuses` (none: any status), of `experiment`, on `cluster`, last on
    `node`, whose run id contains `q` (case-insensitive). Empty fields do not filter."""

    statuses: tuple[str, ...] = field(default=())
    experiment: str | None = None
    cluster: str | None = None
    node: str | None = None
    q: str | None = None

    def __post_init__(self) -> None:
        wrong = [s for s in self.statuses if s not in STATUS_VALUES]
        if wrong:
            raise RunQueryError(f"unknown status {', '.join(repr(s) for s in wrong)}; allowed: {', '.join(STATUS_VALUES)}")

    @classmethod
    def of(cls, statuses: list[str] | tuple[str, ...] | None = None, experiment: str | None = None,
           cluster: str | None = None, node: str | None = None, q: str | None = None) -> RunFilter:
        """From user input: statuses lower-cased and deduplicated, empty strings as not given."""
        names = tuple(dict.fromkeys(s.strip().lower() for s in statuses or () if s and s.strip()))
        return cls(names, experiment or None, cluster or None, node or None, q or None)

    @property
    def empty(self) -> bool:
        """Filters nothing (every run would match)."""
        return not (self.statuses or self.experiment or self.cluster or self.node or self.q)

    def where(self) -> ColumnElement[bool]:
        """The SQL condition."""
        parts: list[ColumnElement[bool]] = []
        if len(self.statuses) == 1:
            parts.append(RunRow.status == self.statuses[0])  # type: ignore[arg-type]
        elif self.statuses:
            parts.append(RunRow.status.in_(self.statuses))  # type: ignore[attr-defined]
        if self.experiment:
            parts.append(RunRow.experiment == self.experiment)  # type: ignore[arg-type]
        if self.cluster:
            parts.append(RunRow.cluster == self.cluster)  # type: ignore[arg-type]
        if self.node:
            parts.append(RunRow.node == self.node)  # type: ignore[arg-type]
        if self.q:
            parts.append(_IContains(RunRow.run_id, literal("%" + _escape_like(self.q) + "%")))
        return and_(true(), *parts)


class _IContains(FunctionElement):
    """`column` contains the pattern, ignoring case: ILIKE on PostgreSQL; on SQLite plain LIKE,
    which ignores ASCII case as SQLite's lower() does, without calling lower() on every row
    (a third of the time of a filtered count over 100,000 runs)."""

    type = Boolean()
    name = "icontains"
    inherit_cache = True


@compiles(_IContains)
def _icontains(element: _IContains, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ILIKE {pattern} ESCAPE '/')"


@compiles(_IContains, "sqlite")
def _icontains_sqlite(element: _IContains, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} LIKE {pattern} ESCAPE '/')"


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def order_by(sort: str | None) -> list[Any]:
    """The ORDER BY of a runs list: `field` or `-field` (descending) of the run's JSON shape,
    then the default order (experiment, run id) so pages never overlap; NULLs last."""
    default = [RunRow.experiment, RunRow.run_id]
    if not sort:
        return default
    name = sort[1:] if sort.startswith("-") else sort
    column = SORT_COLUMNS.get(name)
    if column is None:
        raise RunQueryError(f"unknown sort field {name!r}; allowed: {', '.join(SORT_COLUMNS)} (prefix '-' for descending)")
    key = column.desc() if sort.startswith("-") else column.asc()
    if name in _NULLABLE:
        key = key.nulls_last()
    return [key, *(c for c in default if c is not column)]
