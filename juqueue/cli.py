"""The `juqueue` command: `serve`, and client subcommands that talk to a running server.

Options go after the subcommand (`juqueue runs --json --port N`); every client command
finds the server and its token the same way (juqueue.client). Human output is rich
tables; `--json` prints the API's JSON unchanged, for scripts. The option sets shared by
several commands are declared once, in juqueue.cli_options.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Iterator, NoReturn, Optional

import typer

from juqueue.cli_options import Connection, JsonOpt, ServeArgs, with_option_groups
from juqueue.version import __version__

app = typer.Typer(
    name="juqueue",
    help="Pack command-line runs onto whole nodes (local or SLURM) and resume runs cut off by wall time or lost nodes.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
)

# ---------------------------------------------------------------------- helpers
def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit: scripts and humans both read it."""
    typer.echo(f"juqueue: {message}", err=True)
    raise typer.Exit(code)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # piped: full ids beat an 80-column guess
        console.width = max(console.width, 200)
    return console


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value).strftime("%H:%M:%S") if value else ""


STATUS_STYLE = {"held": "blue", "queued": "yellow", "assigned": "magenta", "running": "cyan", "completed": "green",
                "failed": "red", "cancelled": "dim"}


@contextmanager
def _api(ctx: typer.Context, conn: Connection, timeout: float = 30.0) -> Iterator[Any]:
    """Find the server and token, yield an ApiClient; turn its failures into one-line exits.

    The root command's --work-dir and --port (`juqueue --port N status`) fill in when the
    subcommand's own are not given."""
    from juqueue.client import (
        ApiClient, ApiError, ServerUnreachable, TokenRejected, find_server, find_token, load_registry,
        locate_work_dir, registry_path,
    )

    root = ctx.obj or {}
    wd = locate_work_dir(conn.work_dir or root.get("work_dir"), os.environ, Path.cwd())
    target = find_server(url=conn.url, port=conn.port or root.get("port"), env=os.environ, work_dir=wd,
                         registry=load_registry(registry_path()))
    if not target.url:  # the work dir's server runs without an API (--port -1)
        _fail(target.how)
    tok, tok_source = find_token(token=conn.token, env=os.environ, target=target)
    client = ApiClient(target.url, tok, timeout=timeout)
    try:
        yield client
    except ServerUnreachable as exc:
        _fail(f"no JuQueue server answered at {exc.url} (tried: {target.how})")
    except TokenRejected:
        if tok is None:
            _fail(f"the server at {target.url} needs a token and none was found: give --token, set JUQUEUE_TOKEN, "
                  "or --work-dir of the server (its 'token' file)")
        _fail(f"the server at {target.url} rejected the token from {tok_source}")
    except ApiError as exc:
        _fail(exc.detail, code=2 if exc.status_code == 422 else 1)
    finally:
        client.close()


def _selection(runs: list[str] | None, experiment: str | None, status: str | None = None) -> dict:
    if not runs and not experiment and not status:
        _fail("name at least one run (experiment@run) or give --experiment" + (" or --status" if status is not None else ""))
    return {"ids": list(runs or []), "experiment": experiment, "status": status}


# ---------------------------------------------------------------------- serve
def _serve(args: ServeArgs) -> NoReturn:
    """Run the server until it stops; exit with its code."""
    if args.def_dir is None or args.work_dir is None:
        _fail("serve needs both --def-dir and --work-dir")
    from juqueue.serve import ServeOptions, run_server

    opts = ServeOptions(def_dir=Path(args.def_dir).expanduser().resolve(),
                        work_dir=Path(args.work_dir).expanduser().resolve(),
                        broker=args.broker, db_url=args.db_url, host=args.host, port=args.port,
                        unix_socket=Path(args.unix_socket).expanduser().resolve() if args.unix_socket else None,
                        broker_host=args.broker_host, tick_interval=args.tick_interval, log_level=args.log_level,
                        flower_port=args.flower_port, hold_new=args.hold_new)
    raise typer.Exit(run_server(opts))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"juqueue {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
@with_option_groups
def root(
    ctx: typer.Context,
    *,
    serve_args: ServeArgs,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Without a subcommand, `juqueue --def-dir D --work-dir W` serves, as the original did."""
    ctx.obj = {"work_dir": serve_args.work_dir, "port": serve_args.port}
    if ctx.invoked_subcommand is not None:
        return
    if serve_args.def_dir is None and serve_args.work_dir is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _serve(serve_args)


@app.command()
@with_option_groups
def serve(*, serve_args: ServeArgs) -> None:
    """Start everything: broker (unless --broker), store, controller, local nodes and the API."""
    _serve(serve_args)


# ---------------------------------------------------------------------- client commands
@app.command()
@with_option_groups
def status(ctx: typer.Context, json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Run counts, clusters and their nodes, paused clusters and definition errors."""
    with _api(ctx, conn) as api:
        data = api.get("/api/status")
    if json_out:
        _print_json(data)
        return
    from rich.table import Table

    out = _console()
    out.print(f"JuQueue {data.get('version', '')}" + (f"   Flower: {data['flower_url']}" if data.get("flower_url") else ""))
    if data.get("store_error"):
        out.print(data["store_error"], style="red", markup=False, highlight=False)
    if data.get("counts") is not None:
        counts = Table(title="Runs")
        for name in data["counts"]:
            counts.add_column(name, justify="right", style=STATUS_STYLE.get(name))
        counts.add_row(*(str(n) for n in data["counts"].values()))
        out.print(counts)
    for cluster in data["clusters"]:
        title = f"{cluster['name']} ({cluster.get('type')})"
        if "target_nodes" in cluster:
            title += (f" target {cluster['target_nodes']} node(s), {cluster.get('scaling_policy')}, "
                      f"consolidation {cluster.get('consolidation')}")
        if cluster.get("paused_reason"):
            out.print(f"[red]cluster {cluster['name']} is paused: {cluster['paused_reason']}[/red]", markup=True)
        moving = cluster.get("consolidating")
        if moving:
            moves = ", ".join(f"{m['run']} -> {m['to']}" for m in moving.get("moves") or [])
            out.print(f"cluster {cluster['name']}: emptying {moving['node']}: {moves}", markup=False, highlight=False)
        used = cluster.get("usage")
        if used and used.get("nodes"):
            eff = f"{used['efficiency']:.0%}" if used.get("efficiency") is not None else "n/a"
            est = " (end estimated)" if used.get("estimated") else ""
            out.print(f"cluster {cluster['name']}: {used['node_hours']:.3f} node-hours billed{est}, "
                      f"{used['busy_slot_hours']:.3f} busy slot-hours, efficiency {eff}, "
                      f"{used['lost_hours']:.3f} h of work lost", markup=False, highlight=False)
        budget = cluster.get("budget") or {}
        if budget.get("budget_node_hours") is not None or budget.get("reason"):
            projected = budget.get("projected_node_hours")
            left = f"{projected:.3f}" if projected is not None else "unknown"
            line = (f"cluster {cluster['name']}: budget {budget.get('budget_node_hours')} node-hours, spent "
                    f"{budget.get('spent_node_hours', 0):.3f}, remaining runs need {left}")
            out.print(line + (f"; {budget['reason']}" if budget.get("reason") else ""), markup=False, highlight=False)
        if cluster.get("surplus_reason"):
            out.print(f"cluster {cluster['name']}: surplus waits: {cluster['surplus_reason']}", markup=False, highlight=False)
        if not cluster["nodes"]:
            out.print(f"{title}: no nodes")
            continue
        table = Table(title=title)
        for col in ("node", "state", "slots", "job", "runs", "reason"):
            table.add_column(col)
        for n in cluster["nodes"]:
            state = n["state"] + (" (surplus)" if n.get("surplus") else "")
            table.add_row(n["name"], state, f"{n['slots_used']}/{n['slots_total']}", n.get("job_id") or "",
                          " ".join(n.get("runs") or []), n.get("reason") or "")
        out.print(table)
    if data.get("definition_errors"):
        err = _console(stderr=True)
        err.print(f"[red]{len(data['definition_errors'])} definition error(s):[/red]", markup=True)
        for line in data["definition_errors"]:
            err.print(f"  {line}", markup=False)


@app.command()
@with_option_groups
def runs(ctx: typer.Context,
         experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Only this experiment.")] = None,
         status_: Annotated[Optional[str], typer.Option("--status", "-s", help="held, queued, assigned, running, completed, failed or cancelled.")] = None,
         json_out: JsonOpt = False, *, conn: Connection) -> None:
    """List runs; --json prints one object per run (a stable interface)."""
    with _api(ctx, conn) as api:
        rows = api.get("/api/runs", experiment=experiment, status=status_)
    if json_out:
        _print_json(rows)
        return
    if not rows:
        _console(stderr=True).print("no runs match", markup=False)
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
                      _ts(r.get("started_at")), _ts(r.get("ended_at")), r.get("reason") or "")
    _console().print(table)


_DONE = {"cancel": ("cancelled", "already final"), "requeue": ("requeued", "not failed or cancelled"),
         "hold": ("held", "not queued nor live"), "release": ("released", "not held"),
         "resume": ("resumed", "not held, failed or cancelled (completed: with --completed)")}


def _act(ctx: typer.Context, verb: str, runs_: list[str] | None, experiment: str | None, json_out: bool,
         conn: Connection, status: str | None = None, **extra: object) -> None:
    """Post the selection, print what was done and skipped; unknown ids exit 1."""
    body = {**_selection(runs_, experiment, status), **extra}
    with _api(ctx, conn) as api:
        result = api.post(f"/api/runs/{verb}", body)
    if json_out:
        _print_json(result)
    else:
        done_key, why = _DONE[verb]
        typer.echo(f"{done_key} {len(result[done_key])}: {' '.join(result[done_key])}".rstrip(": "))
        if result.get("skipped"):
            typer.echo(f"skipped ({why}): {' '.join(result['skipped'])}")
    if result.get("unknown"):
        _fail(f"unknown: {' '.join(result['unknown'])}", code=1)


@app.command()
@with_option_groups
def cancel(ctx: typer.Context,
           runs_: Annotated[Optional[list[str]], typer.Argument(metavar="RUN...", help="Global ids (experiment@run).")] = None,
           experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Every run of this experiment.")] = None,
           json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Cancel runs: queued ones at once, running ones are stopped (SIGTERM, grace, SIGKILL)."""
    _act(ctx, "cancel", runs_, experiment, json_out, conn)


@app.command()
@with_option_groups
def requeue(ctx: typer.Context,
            runs_: Annotated[Optional[list[str]], typer.Argument(metavar="RUN...", help="Global ids (experiment@run).")] = None,
            experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Every run of this experiment.")] = None,
            json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Put failed or cancelled runs back in the queue."""
    _act(ctx, "requeue", runs_, experiment, json_out, conn)


_StatusSel = Annotated[Optional[str], typer.Option("--status", "-s", help="Every run with this status (with --experiment: of it).")]
_RunsArg = Annotated[Optional[list[str]], typer.Argument(metavar="RUN...", help="Global ids (experiment@run).")]
_ExpOpt = Annotated[Optional[str], typer.Option("--experiment", "-e", help="Every run of this experiment.")]


@app.command()
@with_option_groups
def hold(ctx: typer.Context, runs_: _RunsArg = None, experiment: _ExpOpt = None, status_: _StatusSel = None,
         json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Hold queued runs (they start no node); a live run is held if it is interrupted later."""
    _act(ctx, "hold", runs_, experiment, json_out, conn, status_ or "")


@app.command()
@with_option_groups
def release(ctx: typer.Context, runs_: _RunsArg = None, experiment: _ExpOpt = None, status_: _StatusSel = None,
            json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Put held runs back in the queue."""
    _act(ctx, "release", runs_, experiment, json_out, conn, status_ or "")


@app.command()
@with_option_groups
def resume(ctx: typer.Context, runs_: _RunsArg = None, experiment: _ExpOpt = None, status_: _StatusSel = None,
           completed: Annotated[bool, typer.Option("--completed", help="Also rerun completed runs.")] = False,
           json_out: JsonOpt = False, *, conn: Connection) -> None:
    """Release held runs and requeue failed and cancelled ones (fresh retry budget, next attempt)."""
    _act(ctx, "resume", runs_, experiment, json_out, conn, status_ or "", completed=completed)


@app.command()
@with_option_groups
def logs(ctx: typer.Context,
         run: Annotated[str, typer.Argument(metavar="RUN", help="Global id (experiment@run).")],
         attempt: Annotated[Optional[int], typer.Option("--attempt", "-a", min=1, help="Default: the latest attempt.")] = None,
         stream: Annotated[str, typer.Option("--stream", help="out or err.")] = "out",
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run is final (follows requeues).")] = False,
         *, conn: Connection) -> None:
    """Print a run's stdout or stderr (one attempt)."""
    if stream not in ("out", "err"):
        _fail(f"--stream must be 'out' or 'err', not {stream!r}")
    with _api(ctx, conn) as api:
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


@app.command()
@with_option_groups
def reload(ctx: typer.Context, json_out: JsonOpt = False,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply even when it stops more than 10 live runs.")] = False,
           *, conn: Connection) -> None:
    """Re-read clusters.yaml and the definitions and apply the difference; live runs whose
    command, executor or cluster changed are stopped and rerun. Exit 1 if any file has errors."""
    with _api(ctx, conn, timeout=300.0) as api:
        result = api.post("/api/reload" + ("?yes=true" if yes else ""))
    errors = result.get("errors") or []
    if result.get("needs_confirmation"):
        if json_out:
            _print_json(result)
        else:
            typer.echo(f"this reload would stop {len(result['would_stop'])} live runs: {' '.join(result['would_stop'])}")
        _fail("nothing was applied; run `juqueue reload --yes` to apply it", code=1)
    if json_out:
        _print_json(result)
    else:
        for key in ("added", "updated", "undefined", "stopped"):
            names = result.get(key) or []
            typer.echo(f"{key} {len(names)}" + (f": {' '.join(names)}" if names else ""))
        for key, names in (result.get("clusters") or {}).items():
            if names:
                typer.echo(f"clusters {key}: {' '.join(names)}")
        for line in errors:
            typer.echo(f"error: {line}", err=True)
    if errors:
        raise typer.Exit(1)


@app.command()
@with_option_groups
def url(ctx: typer.Context, *, conn: Connection) -> None:
    """Print the dashboard link with its token (open it once; a cookie keeps you signed in)."""
    with _api(ctx, conn) as api:
        api.get("/api/runs", limit=1)  # the server answers and takes the token
        if api.unix_socket is not None:
            typer.echo(f"the server listens on the Unix socket {api.unix_socket}: forward it to open the dashboard, e.g. "
                       f"`ssh -L 51234:{api.unix_socket} <this host>`, then http://localhost:51234/?token={api.token}")
            return
        typer.echo(f"{api.url}/?token={api.token}")


@app.command()
@with_option_groups
def stop(ctx: typer.Context,
         cancel_jobs: Annotated[bool, typer.Option("--cancel-jobs", help="Also end SLURM jobs (else they keep running and the next serve reattaches them).")] = False,
         *, conn: Connection) -> None:
    """Stop the server (local nodes stop with it)."""
    with _api(ctx, conn) as api:
        api.post("/api/stop", {"cancel_jobs": cancel_jobs})
        typer.echo(f"the server at {api.url} is stopping" + (" and cancelling its SLURM jobs" if cancel_jobs else ""))


@app.command("slurm-script")
def slurm_script(
    cluster: Annotated[str, typer.Argument(help="A slurm cluster from clusters.yaml.")],
    def_dir: Annotated[Path, typer.Option("--def-dir", help="Definition dir holding clusters.yaml.")],
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Work dir the script would use.")],
) -> None:
    """Print the job script JuQueue would submit for a cluster (no server needed)."""
    from juqueue.definitions.clusters import load_clusters
    from juqueue.errors import ConfigError

    try:
        clusters = load_clusters(Path(def_dir) / "clusters.yaml")
    except ConfigError as exc:
        _fail(str(exc))
    if cluster not in clusters:
        _fail(f"no cluster {cluster!r} in {Path(def_dir) / 'clusters.yaml'}; known: {', '.join(sorted(clusters)) or 'none'}")
    spec = clusters[cluster]
    if spec.type != "slurm":
        _fail(f"cluster {cluster!r} is of type {spec.type!r}; only slurm clusters have a job script")
    try:
        from juqueue.backends.slurm_script import render_job_script
    except ImportError as exc:
        _fail(f"SLURM job scripts are not available in this installation ({exc})")

    work = Path(work_dir).expanduser().resolve()
    from juqueue.paths import WorkDir

    typer.echo(render_job_script(spec, node="<node>", token="<token>", work_dir=work,
                                 log_path=WorkDir(work).node_dir("<node>") / "job.log"), nl=False)


from juqueue.cli_simulate import register_simulate  # noqa: E402  (`juqueue simulate`, its own module)
register_simulate(app)


def main() -> None:
    """Console entry point (`juqueue`)."""
    app()


if __name__ == "__main__":
    main()
