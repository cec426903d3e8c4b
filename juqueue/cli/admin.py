"""Client commands about the server as a whole: `reload`, `url`; and `slurm-script`, which
needs no server (it prints the job script JuQueue would submit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from juqueue.cli.options import Connection, JsonOpt, with_option_groups
from juqueue.cli.plumbing import api_client, fail, print_json


@with_option_groups
def reload(ctx: typer.Context, json_out: JsonOpt = False,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply even when it stops more than 10 live runs.")] = False,
           *, conn: Connection) -> None:
    """Re-read clusters.yaml and the definitions and apply the difference; live runs whose
    command, executor or cluster changed are stopped and rerun. Exit 1 if any file has errors."""
    with api_client(ctx, conn, timeout=300.0) as api:
        result = api.post("/api/reload" + ("?yes=true" if yes else ""))
    errors = result.get("errors") or []
    if result.get("needs_confirmation"):
        if json_out:
            print_json(result)
        else:
            typer.echo(f"this reload would stop {len(result['would_stop'])} live runs: {' '.join(result['would_stop'])}")
        fail("nothing was applied; run `juqueue reload --yes` to apply it", code=1)
    if json_out:
        print_json(result)
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


@with_option_groups
def url(ctx: typer.Context, *, conn: Connection) -> None:
    """Print the dashboard link with its token (open it once; a cookie keeps you signed in)."""
    with api_client(ctx, conn) as api:
        api.get("/api/runs", limit=1)  # the server answers and takes the token
        if api.unix_socket is not None:
            typer.echo(f"the server listens on the Unix socket {api.unix_socket}: forward it to open the dashboard, e.g. "
                       f"`ssh -L 51234:{api.unix_socket} <this host>`, then http://localhost:51234/?token={api.token}")
            return
        typer.echo(f"{api.url}/?token={api.token}")


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
        fail(str(exc))
    if cluster not in clusters:
        fail(f"no cluster {cluster!r} in {Path(def_dir) / 'clusters.yaml'}; known: {', '.join(sorted(clusters)) or 'none'}")
    spec = clusters[cluster]
    if spec.type != "slurm":
        fail(f"cluster {cluster!r} is of type {spec.type!r}; only slurm clusters have a job script")
    try:
        from juqueue.backends.slurm_script import render_job_script
    except ImportError as exc:
        fail(f"SLURM job scripts are not available in this installation ({exc})")

    work = Path(work_dir).expanduser().resolve()
    from juqueue.paths import WorkDir

    typer.echo(render_job_script(spec, node="<node>", token="<token>", work_dir=work,
                                 log_path=WorkDir(work).node_dir("<node>") / "job.log"), nl=False)
