"""`juqueue node drain|stop NAME`: a user's action on one node, through the API
(`POST /api/nodes/<name>/drain|stop`), which the controller carries out."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from juqueue.cli.options import Connection, JsonOpt, with_option_groups
from juqueue.cli.plumbing import api_client, print_json

app = typer.Typer(name="node", help="Drain or stop one node (names: `juqueue status`).", no_args_is_help=True,
                  add_completion=False)

_NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The node's name, as `juqueue status` shows it.")]
_ReasonOpt = Annotated[Optional[str], typer.Option("--reason", "-r", help="Why; shown in the node's reason.")]


def _act(ctx: typer.Context, action: str, name: str, reason: str | None, json_out: bool, conn: Connection) -> None:
    """Post the action; print the node's state and reason after it. Unknown (404) or ended
    (409) nodes exit 1 with the server's words."""
    with api_client(ctx, conn) as api:
        result = api.post(f"/api/nodes/{name}/{action}", {"reason": reason} if reason else None)
    if json_out:
        print_json(result)
        return
    node = result["node"]
    prefix = "" if result["changed"] else "unchanged: "
    typer.echo(f"{prefix}node {node['name']}: {node['state']}" + (f" ({node['reason']})" if node.get("reason") else ""))


@app.command("drain")
@with_option_groups
def drain(ctx: typer.Context, name: _NameArg, reason: _ReasonOpt = None, json_out: JsonOpt = False, *,
          conn: Connection) -> None:
    """The node takes no new runs; its runs go on, and it is released once empty."""
    _act(ctx, "drain", name, reason, json_out, conn)


@app.command("stop")
@with_option_groups
def stop(ctx: typer.Context, name: _NameArg, reason: _ReasonOpt = None, json_out: JsonOpt = False, *,
         conn: Connection) -> None:
    """Stop the node now: its runs are interrupted and queued again (no retry spent), then it ends."""
    _act(ctx, "stop", name, reason, json_out, conn)
