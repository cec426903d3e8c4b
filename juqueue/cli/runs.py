"""Client commands about runs: `runs` (the list), one command per run verb, and `logs`.

The verb commands (cancel, requeue, hold, release, resume) are made from juqueue.run_verbs,
the table the API's routes and the controller's checks read too: a verb's name, help, the
API's answer key and the wording of skipped runs are written there once.
"""

from __future__ import annotations

import inspect
import sys
import time
from typing import Annotated, Any, Callable, Optional

import typer

from juqueue.cli.options import Connection, JsonOpt, with_option_groups
from juqueue.cli.plumbing import STATUS_STYLE, api_client, console, fail, print_json, selection, ts
from juqueue.run_verbs import RunVerb

_StatusSel = Annotated[Optional[str], typer.Option("--status", "-s", help="Every run with this status (with --experiment: of it).")]
_RunsArg = Annotated[Optional[list[str]], typer.Argument(metavar="RUN...", help="Global ids (experiment@run).")]
_ExpOpt = Annotated[Optional[str], typer.Option("--experiment", "-e", help="Every run of this experiment.")]
_CompletedOpt = Annotated[bool, typer.Option("--completed", help="Also rerun completed runs.")]


@with_option_groups
def runs(ctx: typer.Context,
         experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Only this experiment.")] = None,
         status_: Annotated[Optional[list[str]], typer.Option("--status", "-s", help="held, queued, assigned, running, completed, failed or cancelled; repeat it for several.")] = None,
         cluster: Annotated[Optional[str], typer.Option("--cluster", help="Only runs of this cluster.")] = None,
         node: Annotated[Optional[str], typer.Option("--node", help="Only runs on this node (their latest attempt's).")] = None,
         query: Annotated[Optional[str], typer.Option("--query", "-q", help="Only runs whose run id contains this (case-insensitive).")] = None,
         sort: Annotated[Optional[str], typer.Option("--sort", help="A field of the --json shape, '-' first for descending (--sort=-ended_at); default: experiment, run id.")] = None,
         limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most this many runs (default: all, fetched a page at a time).")] = None,
         offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many matching runs.")] = 0,
         json_out: JsonOpt = False, *, conn: Connection) -> None:
    """List runs; --json prints one object per run (a stable interface)."""
    with api_client(ctx, conn) as api:
        rows = list(api.pages("/api/runs", offset=offset, limit=limit, experiment=experiment, status=status_ or None,
                              cluster=cluster, node=node, q=query, sort=sort))
    if json_out:
        print_json(rows)
        return
    if not rows:
        console(stderr=True).print("no runs match", markup=False)
        return
    from rich.table import Table

    table = Table()
    for col in ("run", "status", "attempt", "exit", "node", "cluster", "started", "ended", "reason"):
        table.add_column(col, justify="right" if col in ("attempt", "exit") else "left",
                         overflow="fold", no_wrap=col in ("status", "started", "ended"))
    for r in rows:
        name = r["global_id"] if r.get("defined", True) else f"{r['global_id']} (undefined)"
        style = STATUS_STYLE.get(r["status"], "")
        table.add_row(name, f"[{style}]{r['status']}[/{style}]" if style else r["status"], str(r["attempt"]),
                      "" if r["exit_code"] is None else str(r["exit_code"]), r.get("node") or "", r["cluster"],
                      ts(r.get("started_at")), ts(r.get("ended_at")), r.get("reason") or "")
    console().print(table)


def _act(ctx: typer.Context, verb: RunVerb, runs_: list[str] | None, experiment: str | None, json_out: bool,
         conn: Connection, status: str | None = None, **extra: object) -> None:
    """Post the selection, print what was done and skipped; unknown ids exit 1."""
    body = {**selection(runs_, experiment, status), **extra}
    with api_client(ctx, conn) as api:
        result = api.post(f"/api/runs/{verb.name}", body)
    if json_out:
        print_json(result)
    else:
        done_key = verb.done_key
        typer.echo(f"{done_key} {len(result[done_key])}: {' '.join(result[done_key])}".rstrip(": "))
        if result.get("skipped"):
            typer.echo(f"skipped ({verb.skipped_why}): {' '.join(result['skipped'])}")
        if result.get("matched") == 0 and not result.get("unknown"):
            typer.echo("no run matched the selection", err=True)
    if result.get("unknown"):
        fail(f"unknown: {' '.join(result['unknown'])}", code=1)


def verb_command(verb: RunVerb) -> Callable[..., None]:
    """The command for one run verb: `RUN...`, --experiment, --status (verbs selecting by
    status), --completed (verbs with that flag), --json and the connection options, in
    that order."""

    def command(ctx: typer.Context, runs_: list[str] | None = None, experiment: str | None = None,
                status_: str | None = None, completed: bool = False, json_out: bool = False, *,
                conn: Connection) -> None:
        extra = {"completed": completed} if verb.completed_flag else {}
        # "" rather than None: the error for an empty selection then mentions --status
        _act(ctx, verb, runs_, experiment, json_out, conn, (status_ or "") if verb.by_status else None, **extra)

    param = inspect.Parameter
    params = [param("ctx", param.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
              param("runs_", param.POSITIONAL_OR_KEYWORD, default=None, annotation=_RunsArg),
              param("experiment", param.POSITIONAL_OR_KEYWORD, default=None, annotation=_ExpOpt)]
    if verb.by_status:
        params.append(param("status_", param.POSITIONAL_OR_KEYWORD, default=None, annotation=_StatusSel))
    if verb.completed_flag:
        params.append(param("completed", param.POSITIONAL_OR_KEYWORD, default=False, annotation=_CompletedOpt))
    params += [param("json_out", param.POSITIONAL_OR_KEYWORD, default=False, annotation=JsonOpt),
               param("conn", param.KEYWORD_ONLY, annotation=Connection)]
    command.__name__ = command.__qualname__ = verb.name
    command.__doc__ = verb.cli_help
    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    return with_option_groups(command)


@with_option_groups
def logs(ctx: typer.Context,
         run: Annotated[str, typer.Argument(metavar="RUN", help="Global id (experiment@run).")],
         attempt: Annotated[Optional[int], typer.Option("--attempt", "-a", min=1, help="Default: the latest attempt.")] = None,
         stream: Annotated[str, typer.Option("--stream", help="out or err.")] = "out",
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run is final (follows requeues).")] = False,
         *, conn: Connection) -> None:
    """Print a run's stdout or stderr (one attempt)."""
    if stream not in ("out", "err"):
        fail(f"--stream must be 'out' or 'err', not {stream!r}")
    with api_client(ctx, conn) as api:
        try:
            _tail(api, run, attempt, stream, follow)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def _tail(api: Any, run: str, attempt: int | None, stream: str, follow: bool) -> None:
    """Read chunks until caught up; with --follow, poll and move on to newer attempts."""
    offset, current = 0, attempt
    while True:
        chunk = api.get(f"/api/runs/{run}/logs", attempt=current, stream=stream, offset=offset)
        current = chunk["attempt"]
        if chunk["text"]:
            sys.stdout.write(chunk["text"])
            sys.stdout.flush()
        progressed = chunk["next_offset"] > offset
        offset = chunk["next_offset"]
        if progressed:
            continue
        if not follow:
            return
        if attempt is None and chunk["latest_attempt"] > current:
            current, offset = chunk["latest_attempt"], 0
            typer.echo(f"--- attempt {current} ---", err=True)
            continue
        if chunk["final"]:
            return
        time.sleep(1.0)
