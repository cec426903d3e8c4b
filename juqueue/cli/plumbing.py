"""What every client command shares: finding the server, one-line errors, JSON and rich output.

A failure is one line on stderr and an exit code (2: bad input or no server, 1: the server
refused), so scripts and humans read the same thing. Rich and juqueue.client are imported
when used: `juqueue --help` stays quick.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, NoReturn

import typer

from juqueue.cli.options import Connection

STATUS_STYLE = {"held": "blue", "queued": "yellow", "assigned": "magenta", "running": "cyan", "completed": "green",
                "failed": "red", "cancelled": "dim"}


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit: scripts and humans both read it."""
    typer.echo(f"juqueue: {message}", err=True)
    raise typer.Exit(code)


def console(stderr: bool = False) -> Any:
    """A rich console; piped, it is wide enough that ids are not cut."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:  # piped: full ids beat an 80-column guess
        out.width = max(out.width, 200)
    return out


def print_json(obj: Any) -> None:
    """The API's JSON unchanged (`--json`, for scripts)."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def ts(value: float | None) -> str:
    """A time of day for tables; empty when unset."""
    return datetime.fromtimestamp(value).strftime("%H:%M:%S") if value else ""


@contextmanager
def api_client(ctx: typer.Context, conn: Connection, timeout: float = 30.0) -> Iterator[Any]:
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
        fail(target.how)
    tok, tok_source = find_token(token=conn.token, env=os.environ, target=target)
    client = ApiClient(target.url, tok, timeout=timeout)
    try:
        yield client
    except ServerUnreachable as exc:
        fail(f"no JuQueue server answered at {exc.url} (tried: {target.how})")
    except TokenRejected:
        if tok is None:
            fail(f"the server at {target.url} needs a token and none was found: give --token, set JUQUEUE_TOKEN, "
                 "or --work-dir of the server (its 'token' file)")
        fail(f"the server at {target.url} rejected the token from {tok_source}")
    except ApiError as exc:
        fail(exc.detail, code=2 if exc.status_code == 422 else 1)
    finally:
        client.close()


def selection(runs: list[str] | None, experiment: str | None, status: str | None = None) -> dict:
    """The API's run selection; an empty one is refused here (`status=""`: the verb takes --status)."""
    if not runs and not experiment and not status:
        fail("name at least one run (experiment@run) or give --experiment" + (" or --status" if status is not None else ""))
    return {"ids": list(runs or []), "experiment": experiment, "status": status}
