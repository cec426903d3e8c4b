"""Checks across all definition files, turning per-file results into one `LoadResult`.

A file with any error fails as a whole: its runs are dropped and its experiments are
reported in `failed_experiments`, so the store leaves them exactly as they were.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from juqueue.definitions.models import DefinitionError, LoadResult, RunSpec


@dataclass
class FileResult:
    """What one definition file produced before cross-file checks."""

    file: str  # relative to the def dir, posix
    experiments: list[str] = field(default_factory=list)  # names, known even if the file failed
    runs: list[RunSpec] = field(default_factory=list)
    errors: list[DefinitionError] = field(default_factory=list)
    budgets: dict[str, float] = field(default_factory=dict)  # experiment -> budget_node_hours

    def error(self, message: str, run: str | None = None, field_: str | None = None) -> None:
        if run is not None and len(run) > 200:  # a run named by a huge string: the message names it short
            run = run[:197] + "..."
        self.errors.append(DefinitionError(file=self.file, message=message, run=run, field=field_))


FILE_RESULT: TypeAdapter[FileResult] = TypeAdapter(FileResult)  # a FileResult to and from JSON (the evaluator's protocol)


MAX_NAME_BYTES = 255  # a directory name's limit on Linux file systems


def short_repr(value: object, limit: int = 80) -> str:
    """repr() cut to `limit` characters, so a 10 MB name does not make a 10 MB message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..." + text[-1]


def unsafe_name_reason(name: object) -> str | None:
    """Why `name` cannot be a directory name (or part of a global id), or None if it can."""
    if not isinstance(name, str):
        return f"must be a string, not {type(name).__name__}"
    shown = short_repr(name)
    if name == "":
        return "is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"{shown} is longer than {MAX_NAME_BYTES} bytes (a directory name cannot be)"
    if name in (".", ".."):
        return f"{shown} is not a directory name"
    if name.startswith("."):
        return f"{shown} starts with '.' (reserved: the work dir keeps JuQueue's own files in .juqueue/)"
    if "/" in name or "\\" in name:
        return f"{shown} contains a path separator"
    if "@" in name:
        return f"{shown} contains '@' (reserved for global ids experiment@run)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        return f"{shown} contains a control character"
    if name != name.strip():
        return f"{shown} has leading or trailing whitespace"
    return None


def errors_from_validation(
    file: str, exc: ValidationError, run: str | None = None, prefix: str = ""
) -> list[DefinitionError]:
    """Pydantic's errors as DefinitionErrors naming the field (`executor.env`, `cmd.2`, ...)."""
    out = []
    for err in exc.errors():
        loc = prefix + ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "missing required field"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(DefinitionError(file=file, message=msg, run=run, field=loc or None))
    return out


def _check_file(fr: FileResult, cluster_names: set[str] | None) -> None:
    for name in fr.experiments:
        reason = unsafe_name_reason(name)
        if reason:
            fr.error(f"experiment name {reason}", field_="experiment")
    seen: dict[tuple[str, str], int] = {}
    for run in fr.runs:
        reason = unsafe_name_reason(run.id)
        if reason:
            fr.error(f"run id {reason}", run=run.id, field_="id")
        key = (run.experiment, run.id)
        seen[key] = seen.get(key, 0) + 1
        if cluster_names is not None and run.cluster not in cluster_names:
            known = ", ".join(sorted(cluster_names)) or "none"
            fr.error(f"unknown cluster {short_repr(run.cluster)} (clusters.yaml defines: {known})",
                     run=run.id, field_="cluster")
    for (exp, run_id), n in seen.items():
        if n > 1:
            fr.error(f"run id {short_repr(run_id)} is used by {n} runs of experiment {short_repr(exp)}", run=run_id, field_="id")


def _find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that are cycles (size > 1 or a self-loop), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in graph.get(node, []):
                    cycles.append(sorted(comp))
    return cycles


def combine(files: list[FileResult], cluster_names: set[str] | None) -> LoadResult:
    """Validate every file, then across files, and build the result of what loaded."""
    for fr in files:
        _check_file(fr, cluster_names)

    # one experiment, one file: both files fail, each naming the other
    owners: dict[str, list[FileResult]] = {}
    for fr in files:
        for name in dict.fromkeys(fr.experiments):
            owners.setdefault(name, []).append(fr)
    for name, frs in owners.items():
        if len(frs) > 1:
            for fr in frs:
                others = ", ".join(o.file for o in frs if o is not fr)
                fr.error(f"experiment {short_repr(name)} is also defined in {others}", field_="experiment")

    # dependencies: unknown only if no file (failed or not) could have defined the target
    known = {r.global_id for fr in files for r in fr.runs}
    runless_failed = {n for fr in files if fr.errors and not fr.runs for n in fr.experiments}
    for fr in files:
        for run in fr.runs:
            for dep in run.depends_on:
                exp, _, rid = dep.partition("@")
                if dep not in known and exp not in runless_failed:
                    fr.error(f"depends on unknown run {short_repr(dep)}", run=run.id, field_="depends_on")

    by_gid = {r.global_id: (fr, r) for fr in files for r in fr.runs}
    graph = {gid: list(r.depends_on) for gid, (_, r) in by_gid.items()}
    for cycle in _find_cycles(graph):
        text = " -> ".join(cycle + [cycle[0]]) if len(cycle) > 1 else f"{cycle[0]} -> {cycle[0]}"
        for fr in {id(by_gid[g][0]): by_gid[g][0] for g in cycle}.values():
            mine = [by_gid[g][1].id for g in cycle if by_gid[g][0] is fr]
            fr.error(f"dependency cycle: {text}", run=", ".join(mine), field_="depends_on")

    result = LoadResult()
    for fr in files:
        if fr.errors:
            names = list(dict.fromkeys(fr.experiments))
            for err in fr.errors:
                err.experiment = err.experiment or (names[0] if len(names) == 1 else None)
            result.errors.extend(fr.errors)
            result.failed_files.append(fr.file)
            result.failed_experiments.extend(n for n in fr.experiments if n not in result.failed_experiments)
        else:
            result.runs.extend(fr.runs)
            for name in fr.experiments:
                result.experiments[name] = fr.file
            result.budgets.update(fr.budgets)
    return result


def check_run_slots(result: LoadResult, num_slots: dict[str, int]) -> LoadResult:
    """Refuse runs that need more slots than a node of their cluster has (they would wait
    forever): each such run is a definition error naming it, and its file fails as a whole,
    like any file with an error (its experiments keep what they had). The controller calls
    this when it applies definitions: it knows every cluster's num_slots."""
    from juqueue.policy.slot_demand import run_slots_error

    bad: dict[str, list[DefinitionError]] = {}
    for run in result.runs:
        if run.cluster not in num_slots:
            continue
        message = run_slots_error(run.id, run.slots, run.cluster, num_slots[run.cluster])
        if message:
            bad.setdefault(run.source_file, []).append(
                DefinitionError(file=run.source_file, message=message, run=run.id, field="slots",
                                experiment=run.experiment))
    if not bad:
        return result
    out = result.model_copy(deep=True)
    for file, errors in bad.items():
        out.errors.extend(errors)
        out.failed_files.append(file)
        names = [n for n, f in out.experiments.items() if f == file]
        out.failed_experiments.extend(n for n in names if n not in out.failed_experiments)
        for n in names:
            out.experiments.pop(n, None)
            out.budgets.pop(n, None)
    out.runs = [r for r in out.runs if r.source_file not in bad]
    return out
