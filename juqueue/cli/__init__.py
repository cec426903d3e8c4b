"""The `juqueue` command: `serve`, and client subcommands that talk to a running server.

Options go after the subcommand (`juqueue runs --json --port N`); every client command
finds the server and its token the same way (juqueue.cli.plumbing, over juqueue.client).
Human output is rich tables; `--json` prints the API's JSON unchanged, for scripts. The
option sets shared by several commands are declared once, in juqueue.cli.options.

This module assembles the app from the commands' modules: serve.py (serve, stop),
status.py, runs.py (runs, the run verbs of juqueue.run_verbs, logs), admin.py (reload, url,
slurm-script), simulate.py, watch.py (a live view; its state, feed reader and renderer in
watch_state.py, watch_feed.py, watch_render.py) and node.py (`node drain|stop`, a sub-app).
Commands are registered here, in the order `--help` lists them.
"""

from __future__ import annotations

from typing import Annotated

import typer

# the modules, not their commands: `juqueue.cli.status` etc. stay the modules (for monkeypatch)
from juqueue.cli import admin, node, runs, serve, simulate, status, watch
from juqueue.cli.options import ServeArgs, with_option_groups
from juqueue.run_verbs import RUN_VERBS
from juqueue.version import __version__

app = typer.Typer(
    name="juqueue",
    help="Pack command-line runs onto whole nodes (local or SLURM) and resume runs cut off by wall time or lost nodes.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
)


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
    serve.serve_from_args(serve_args)


app.command()(serve.serve)
app.command()(status.status)
app.command()(runs.runs)
for _verb in RUN_VERBS:
    app.command(_verb.name)(runs.verb_command(_verb))
app.command()(runs.logs)
app.command()(admin.reload)
app.command()(admin.url)
app.command()(serve.stop)
app.command("slurm-script")(admin.slurm_script)
app.command("simulate")(simulate.simulate)
app.command("watch")(watch.watch)
app.add_typer(node.app, name="node")


def main() -> None:
    """Console entry point (`juqueue`)."""
    app()
