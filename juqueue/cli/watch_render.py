"""`juqueue watch`'s screen, drawn from a `WatchState` with no I/O (golden-tested).

Top to bottom: the header (server, version, store and broker health, how the view is fed,
paused clusters, definition errors), one progress bar per experiment with its ETA, then per
cluster its nodes and slots, node-hours, efficiency and budget, one line per node with its slot
map and time left, what the controller is doing there, and last the latest events. Text from
the server is never read as markup.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.text import Text

from juqueue.cli.plumbing import STATUS_STYLE
from juqueue.cli.watch_state import FINAL, LIVE_NODE_STATES, PENDING_NODE_STATES, WatchState, eta_s

STATUS_ORDER = ("completed", "failed", "cancelled", "running", "assigned", "queued", "held")
BAR_GLYPH = {"completed": "█", "failed": "X", "cancelled": "/", "running": "▓", "assigned": "▒", "queued": "░",
             "held": "·"}
BAR_WIDTH = 24
MIN_BAR, MAX_BAR = 10, 40
MAX_NAME = 30  # longer experiment names push their bar right
MAX_EXPERIMENTS = 15
MAX_SLOT_MAP = 64  # wider nodes show their counts only
MAX_MOVES = 4
MAX_ERRORS = 3
SLOT_FOCUS, SLOT_OTHER, SLOT_FREE = "■", "□", "·"


def duration(seconds: float) -> str:
    """A short duration: 45s, 12m, 1h05m, 2d03h."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "--:--:--"


def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "n/a"


def render_watch(state: WatchState, now: float, events: int = 8, width: int = 120,
                 max_nodes: int | None = None) -> Group:
    """The whole screen for `state` at time `now`, with at most `events` last events, for a
    terminal `width` columns wide (the progress bars' width follows it), at most `max_nodes`
    node lines per cluster (None: every node; a full-screen view must fit its height)."""
    parts: list[Any] = [*_header(state, now), Text("")]
    parts.extend(_experiments(state, now, width))
    for cluster in state.clusters:
        parts.append(Text(""))
        parts.extend(_cluster(state, cluster, now, max_nodes))
    shown = list(state.events)[-events:] if events > 0 else []
    parts.append(Text(""))
    parts.append(Text("Last events" + (f" of {state.focus}" if state.focus else ""), style="bold"))
    if not shown:
        parts.append(Text("  none yet", style="dim"))
    for e in shown:
        parts.append(Text.assemble(f"  {clock(e.ts)}  ", (e.text, e.style)))
    return Group(*parts)


def _header(state: WatchState, now: float) -> list[Text]:
    head = Text.assemble(("JuQueue", "bold"), f" {state.version} at {state.server}", "  ·  ")
    head.append("store ok" if not state.store_error else state.store_error, style="green" if not state.store_error else "red")
    if state.broker_error:
        head.append(f"  ·  {state.broker_error}", style="red")
    head.append(f"  ·  {state.feed}")
    p95 = (state.batch or {}).get("p95_ms")
    if p95 is not None:
        head.append(f"  ·  batch p95 {p95:.0f} ms")
    head.append(f"  ·  {clock(now)}")
    lines = [head]
    if state.unreachable_since is not None:
        lines.append(Text(f"the server has not answered since {clock(state.unreachable_since)}", style="red"))
    for c in state.clusters:
        if c.get("paused_reason"):
            lines.append(Text(f"cluster {c['name']} is paused: {c['paused_reason']}", style="red"))
    errors = state.definition_errors
    if errors:
        lines.append(Text(f"{len(errors)} definition error(s):", style="red"))
        lines.extend(Text(f"  {e}") for e in errors[:MAX_ERRORS])
        if len(errors) > MAX_ERRORS:
            lines.append(Text(f"  … and {len(errors) - MAX_ERRORS} more (juqueue status lists them)"))
    counts = state.watched_counts()
    if counts is not None:
        runs = Text("Runs" + (f" of {state.focus}" if state.focus else "") + ": ")
        shown = [(s, counts.get(s, 0)) for s in STATUS_ORDER if counts.get(s, 0)]
        for i, (status, n) in enumerate(shown):
            runs.append(("  " if i else "") + f"{n} {status}", style=STATUS_STYLE.get(status, ""))
        if not shown:
            runs.append("none")
        lines.append(runs)
    return lines


def progress_bar(counts: dict[str, int], width: int = BAR_WIDTH) -> Text:
    """A bar split by status (final first), each part as wide as its share, at least one cell when present."""
    total = sum(counts.values())
    bar = Text()
    if total == 0:
        return Text(" " * width)
    cells = {s: round(counts.get(s, 0) * width / total) for s in STATUS_ORDER}
    for s in STATUS_ORDER:
        if counts.get(s, 0) and cells[s] == 0:
            cells[s] = 1
    widest = max(cells, key=lambda k: cells[k])
    cells[widest] += width - sum(cells.values())  # what rounding left over or took, to or from the widest part
    for s in STATUS_ORDER:
        bar.append(BAR_GLYPH[s] * cells[s], style=STATUS_STYLE.get(s, ""))
    return bar


def _experiments(state: WatchState, now: float, width: int) -> list[Any]:
    """Per experiment two lines: its bar, runs done and ETA; then its runs per status and its cost."""
    names = [state.focus] if state.focus else sorted(
        state.experiments, key=lambda n: (_final_share(state.experiments[n]) >= 1.0, n))
    if not names:
        return [Text("no experiments", style="dim")]
    shown = names[:MAX_EXPERIMENTS]
    pad = min(max(len(n) for n in shown), MAX_NAME)
    bar_width = max(MIN_BAR, min(MAX_BAR, width - pad - 32))
    totals = [(state.experiments.get(n) or {}).get("total") or 0 for n in shown]
    done_pad = max(len(f"{t}/{t} 100%") for t in totals)
    parts: list[Any] = [Text("Experiments", style="bold")]
    for name in shown:
        exp = state.experiments.get(name)
        label = Text(name.ljust(pad), style="bold")
        if exp is None:
            parts.append(Text.assemble(label, ("  not known to the server (yet)", "dim")))
            continue
        counts, total = exp.get("counts") or {}, exp.get("total") or 0
        done = sum(counts.get(s, 0) for s in FINAL)
        pct = f"{done * 100 // total}%" if total else "-"
        parts.append(Text.assemble(label, "  [", progress_bar(counts, bar_width), "]  ",
                                   f"{done}/{total} {pct}".rjust(done_pad), "  ", _eta(state, name, now)))
        detail = Text(" " * (pad + 2))
        for status in ("running", "assigned", "queued", "held", "failed", "cancelled"):
            if counts.get(status):
                detail.append(f"{counts[status]} {status}", style=STATUS_STYLE.get(status, ""))
                detail.append("  ")
        detail.append(f"{exp.get('node_hours', 0.0):.3f} node-hours  efficiency {_pct(exp.get('efficiency'))}"
                      + _experiment_budget(exp), style="dim")
        parts.append(detail)
        for err in exp.get("errors") or []:
            parts.append(Text(f"{' ' * (pad + 2)}{err.get('text') or err.get('message')}", style="red"))
        if exp.get("budget_reason"):
            parts.append(Text(f"{' ' * (pad + 2)}{exp['budget_reason']}", style="yellow"))
    if len(names) > MAX_EXPERIMENTS:
        parts.append(Text(f"… and {len(names) - MAX_EXPERIMENTS} more (--experiment E shows one)", style="dim"))
    return parts


def _final_share(exp: dict) -> float:
    total = exp.get("total") or 0
    return sum((exp.get("counts") or {}).get(s, 0) for s in FINAL) / total if total else 1.0


def _eta(state: WatchState, name: str, now: float) -> Text:
    seconds, estimated = eta_s(state, name, now)
    if seconds == 0:
        return Text("done", style="green")
    if seconds is None:
        return Text("ETA -", style="dim")
    return Text(f"ETA {'~' if estimated else ''}{duration(seconds)}")


def _experiment_budget(exp: dict) -> str:
    cap = exp.get("budget_node_hours")
    return "" if cap is None else f"  budget {exp.get('spent_node_hours', 0.0):.3f}/{cap:g} nh"


def _cluster(state: WatchState, cluster: dict, now: float, max_nodes: int | None) -> list[Any]:
    nodes = cluster.get("nodes") or []
    live = [n for n in nodes if n.get("state") in LIVE_NODE_STATES]
    pending = [n for n in nodes if n.get("state") in PENDING_NODE_STATES]
    busy = sum(n.get("slots_used") or 0 for n in live)
    total = sum(n.get("slots_total") or n.get("num_slots") or 0 for n in live)
    head = Text.assemble((f"Cluster {cluster['name']}", "bold"), f" ({cluster.get('type')})" if cluster.get("type") else "")
    target = f" (target {cluster['target_nodes']})" if cluster.get("target_nodes") is not None else ""
    head.append(f"  nodes {len(live)} live, {len(pending)} pending{target}  slots {busy}/{total} busy")
    lines: list[Any] = [head]
    cost = Text("  ")
    usage = cluster.get("usage")
    if usage:
        est = " (end estimated)" if usage.get("estimated") else ""
        cost.append(f"{usage.get('node_hours', 0.0):.3f} node-hours{est}  efficiency {_pct(usage.get('efficiency'))}")
        if usage.get("lost_hours"):
            cost.append(f"  {usage['lost_hours']:.3f} h of work lost")
    budget = cluster.get("budget") or {}
    if budget.get("budget_node_hours") is not None or budget.get("reason"):
        projected = budget.get("projected_node_hours")
        spend = Text(f"  budget {budget.get('budget_node_hours')} node-hours, spent "
                     f"{budget.get('spent_node_hours', 0.0):.3f}, remaining runs need "
                     f"{f'{projected:.3f}' if projected is not None else 'unknown'}")
        if budget.get("reason"):
            spend.append(f"; {budget['reason']}", style="yellow")
        lines.append(spend)
    if cost.plain.strip():
        lines.insert(1, cost)
    if not nodes:
        lines.append(Text("  no nodes", style="dim"))
    pad = max((len(n["name"]) for n in nodes), default=0)
    maps = {n["name"]: _slots_text(state, n) for n in nodes}
    slots_pad = max((len(m) for m in maps.values()), default=0)
    shown = nodes if max_nodes is None else sorted(nodes, key=lambda n: -(n.get("slots_used") or 0))[:max_nodes]
    for n in (n for n in nodes if n in shown):  # the busiest ones when not all fit, in name order
        lines.extend(_node_lines(n, pad, maps[n["name"]].ljust(slots_pad), now))
    if len(shown) < len(nodes):
        more = len(nodes) - len(shown)
        lines.append(Text(f"  … and {more} more node{'s' if more > 1 else ''} (juqueue status lists them)", style="dim"))
    lines.extend(Text(f"  controller: {line}", style="magenta") for line in controller_lines(cluster, now))
    return lines


def slot_map(node: dict, focus: str | None) -> str:
    """One character per slot: a run of the watched experiment (or any run) ■, another's □, free ·."""
    slots = list(node.get("slots") or [])
    total = node.get("slots_total") or node.get("num_slots") or len(slots)
    if not slots or not all(s is None or isinstance(s, str) for s in slots):
        used = node.get("slots_used") or 0
        slots = ["?"] * used + [None] * max(0, total - used)
    if len(slots) > MAX_SLOT_MAP:
        return ""
    prefix = f"{focus}@" if focus else ""
    return "".join(SLOT_FREE if s is None else SLOT_FOCUS if s.startswith(prefix) or s == "?" else SLOT_OTHER
                   for s in slots)


def _slots_text(state: WatchState, n: dict) -> str:
    total = n.get("slots_total") or n.get("num_slots") or 0
    return f"{slot_map(n, state.focus)} {n.get('slots_used') or 0}/{total}".strip()


def _node_lines(n: dict, pad: int, slots: str, now: float) -> list[Text]:
    """A node: name, state, slot map, time left, job, host and heartbeat; below it, why it is there."""
    left = n.get("time_limit_at")
    when = f"{duration(left - now)} left" if left and left > now else ("wall time over" if left else "no wall time")
    facts = [f"job {n['job_id']}"] if n.get("job_id") else []
    if n.get("host"):
        facts.append(str(n["host"]))
    if n.get("last_heartbeat") and n.get("state") in LIVE_NODE_STATES:
        facts.append(f"heartbeat {duration(now - n['last_heartbeat'])} ago")
    state = str(n.get("state") or "")
    head = Text.assemble(f"  {n['name'].ljust(pad)}  ", (state.ljust(8), "red" if state == "failed" else ""),
                         f"  {slots}  {when.ljust(12)}", (f"  {', '.join(facts)}" if facts else "", "dim"))
    why = []
    if n.get("surplus"):
        why.append("surplus" + (f": {n['surplus_reason']}" if n.get("surplus_reason") else ""))
    elif n.get("kept_reason"):
        why.append(f"kept: {n['kept_reason']}")
    if n.get("replaces"):
        why.append(f"replaces {n['replaces']}")
    if n.get("reason"):
        why.append(str(n["reason"]))
    if n.get("no_devices"):
        why.append("no CUDA devices")
    return [head] + ([Text(f"  {' ' * pad}  {'; '.join(why)}")] if why else [])


def controller_lines(cluster: dict, now: float) -> list[str]:
    """What the controller is doing on a cluster: the node it empties and its moves, why a surplus
    is kept, the replacements under way and the next node whose wall time ends."""
    lines = []
    moving = cluster.get("consolidating")
    if moving:
        moves = [f"{m.get('run')} -> {m.get('to')}" for m in moving.get("moves") or []]
        more = f", +{len(moves) - MAX_MOVES} more" if len(moves) > MAX_MOVES else ""
        since = f" since {clock(moving['since'])}" if moving.get("since") else ""
        lines.append(f"emptying {moving.get('node')}{since}: " + (", ".join(moves[:MAX_MOVES]) + more or "no moves yet"))
    if cluster.get("surplus_reason"):
        lines.append(f"surplus kept: {cluster['surplus_reason']}")
    nodes = [n for n in cluster.get("nodes") or [] if n.get("state") not in ("gone", "failed")]
    replaced = {n["replaces"] for n in nodes if n.get("replaces")}
    for n in nodes:
        if n.get("replaces"):
            guard = n.get("protected_until")
            kept = f" (protected for {duration(guard - now)})" if guard and guard > now else ""
            lines.append(f"{n['name']} replaces {n['replaces']}{kept}")
    ending = sorted((n for n in nodes if n.get("time_limit_at") and n.get("state") in LIVE_NODE_STATES
                     and n["name"] not in replaced), key=lambda n: n["time_limit_at"])
    if ending:
        first = ending[0]
        lines.append(f"next wall time to end: {first['name']} in {duration(first['time_limit_at'] - now)}")
    return lines
