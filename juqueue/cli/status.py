"""`juqueue status`: the server's overview as tables and lines.

`render_status` turns the answer of `GET /api/status` into what is printed, with no I/O, so
the layout is tested against a recorded answer (tests/unit/golden/status_api.json). Each
line is built as `Console.print` would build it from a string: markup read where the
command always read it (`Text.from_markup`), plain text elsewhere (emoji codes replaced, as
the console does by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from juqueue.cli.options import Connection, JsonOpt, with_option_groups
from juqueue.cli.plumbing import STATUS_STYLE, api_client, console, print_json

if TYPE_CHECKING:
    from rich.console import Group
    from rich.text import Text


def _markup(text: str) -> Text:
    """What `console.print(text)` renders: markup on."""
    from rich.text import Text

    return Text.from_markup(text)


def _plain(text: str, style: str = "") -> Text:
    """What `console.print(text, markup=False)` renders (highlighting is off on our consoles)."""
    from rich.emoji import Emoji
    from rich.text import Text

    return Text(Emoji.replace(text), style=style)


def _cluster_lines(cluster: dict[str, Any]) -> list[Any]:
    """One cluster: its notices (paused, moves, usage, budget, surplus), then its node table."""
    from rich.table import Table

    parts: list[Any] = []
    title = f"{cluster['name']} ({cluster.get('type')})"
    if "target_nodes" in cluster:
        title += (f" target {cluster['target_nodes']} node(s), {cluster.get('scaling_policy')}, "
                  f"consolidation {cluster.get('consolidation')}")
    if cluster.get("paused_reason"):
        parts.append(_markup(f"[red]cluster {cluster['name']} is paused: {cluster['paused_reason']}[/red]"))
    moving = cluster.get("consolidating")
    if moving:
        moves = ", ".join(f"{m['run']} -> {m['to']}" for m in moving.get("moves") or [])
        parts.append(_plain(f"cluster {cluster['name']}: emptying {moving['node']}: {moves}"))
    used = cluster.get("usage")
    if used and used.get("nodes"):
        eff = f"{used['efficiency']:.0%}" if used.get("efficiency") is not None else "n/a"
        est = " (end estimated)" if used.get("estimated") else ""
        parts.append(_plain(f"cluster {cluster['name']}: {used['node_hours']:.3f} node-hours billed{est}, "
                            f"{used['busy_slot_hours']:.3f} busy slot-hours, efficiency {eff}, "
                            f"{used['lost_hours']:.3f} h of work lost"))
    budget = cluster.get("budget") or {}
    if budget.get("budget_node_hours") is not None or budget.get("reason"):
        projected = budget.get("projected_node_hours")
        left = f"{projected:.3f}" if projected is not None else "unknown"
        line = (f"cluster {cluster['name']}: budget {budget.get('budget_node_hours')} node-hours, spent "
                f"{budget.get('spent_node_hours', 0):.3f}, remaining runs need {left}")
        parts.append(_plain(line + (f"; {budget['reason']}" if budget.get("reason") else "")))
    if cluster.get("surplus_reason"):
        parts.append(_plain(f"cluster {cluster['name']}: surplus waits: {cluster['surplus_reason']}"))
    if not cluster["nodes"]:
        parts.append(_markup(f"{title}: no nodes"))
        return parts
    table = Table(title=title)
    for col in ("node", "state", "slots", "job", "runs", "reason"):
        table.add_column(col)
    for n in cluster["nodes"]:
        state = n["state"] + (" (surplus)" if n.get("surplus") else "")
        table.add_row(n["name"], state, f"{n['slots_used']}/{n['slots_total']}", n.get("job_id") or "",
                      " ".join(n.get("runs") or []), n.get("reason") or "")
    parts.append(table)
    return parts


def render_status(data: dict[str, Any]) -> Group:
    """The stdout part of `juqueue status` for an /api/status answer (definition errors go to
    stderr: `render_definition_errors`)."""
    from rich.console import Group
    from rich.table import Table

    parts: list[Any] = [
        _markup(f"JuQueue {data.get('version', '')}" + (f"   Flower: {data['flower_url']}" if data.get("flower_url") else ""))]
    if data.get("store_error"):
        parts.append(_plain(data["store_error"], style="red"))
    if data.get("counts") is not None:
        counts = Table(title="Runs")
        for name in data["counts"]:
            counts.add_column(name, justify="right", style=STATUS_STYLE.get(name))
        counts.add_row(*(str(n) for n in data["counts"].values()))
        parts.append(counts)
    for cluster in data["clusters"]:
        parts.extend(_cluster_lines(cluster))
    return Group(*parts)


def render_definition_errors(data: dict[str, Any]) -> Group | None:
    """The definition errors of an /api/status answer, for stderr; None when there are none."""
    from rich.console import Group

    errors = data.get("definition_errors")
    if not errors:
        return None
    return Group(_markup(f"[red]{len(errors)} definition error(s):[/red]"), *(_plain(f"  {line}") for line in errors))


@with_option_groups
def status(ctx: typer.Context, json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Run counts, clusters and their nodes, paused clusters and definition errors."""
    with api_client(ctx, conn) as api:
        data = api.get("/api/status")
    if json_out:
        print_json(data)
        return
    console().print(render_status(data))
    errors = render_definition_errors(data)
    if errors is not None:
        console(stderr=True).print(errors)
