"""Starting and stopping the server: `serve` (and the bare root command), `stop`.

The server's modules are imported only when it starts, so client commands start quickly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from juqueue.cli.options import Connection, ServeArgs, with_option_groups
from juqueue.cli.plumbing import api_client, fail


def serve_from_args(args: ServeArgs) -> NoReturn:
    """Run the server until it stops; exit with its code."""
    if args.def_dir is None or args.work_dir is None:
        fail("serve needs both --def-dir and --work-dir")
    from juqueue.errors import ConfigError
    from juqueue.serve import ServeOptions, run_server
    from juqueue.settings import Settings

    try:
        settings = Settings.from_env(args.timings())
    except ConfigError as exc:  # name the flag the user typed, not the field
        message = str(exc)
        for field in args.timings():
            message = message.replace(f"setting {field}", "--" + field.removesuffix("_s").replace("_", "-"))
        fail(message)

    opts = ServeOptions(def_dir=Path(args.def_dir).expanduser().resolve(),
                        work_dir=Path(args.work_dir).expanduser().resolve(),
                        broker=args.broker, db_url=args.db_url, host=args.host, port=args.port,
                        unix_socket=Path(args.unix_socket).expanduser().resolve() if args.unix_socket else None,
                        broker_host=args.broker_host, tick_interval=args.tick_interval, log_level=args.log_level,
                        flower_port=args.flower_port, hold_new=args.hold_new)
    raise typer.Exit(run_server(opts, settings))


@with_option_groups
def serve(*, serve_args: ServeArgs) -> None:
    """Start everything: broker (unless --broker), store, controller, local nodes and the API."""
    serve_from_args(serve_args)


@with_option_groups
def stop(ctx: typer.Context,
         cancel_jobs: Annotated[bool, typer.Option("--cancel-jobs", help="Also end SLURM jobs (else they keep running and the next serve reattaches them).")] = False,
         *, conn: Connection) -> None:
    """Stop the server (local nodes stop with it)."""
    with api_client(ctx, conn) as api:
        api.post("/api/stop", {"cancel_jobs": cancel_jobs})
        typer.echo(f"the server at {api.url} is stopping" + (" and cancelling its SLURM jobs" if cancel_jobs else ""))
