"""`juqueue serve`: the server as ordered steps, each starting one piece and stopping it.

Entry point: `run_server(opts: ServeOptions, settings: Settings | None = None) -> int`
(`juqueue.serve.server`; `Settings` is `juqueue.settings.Settings`). Modelled on Celery's
worker bootsteps: each step has `start(ctx)` / `stop(ctx)`, reads its own slice of the
options, and fills its fields of the shared `ServeContext`. The runner starts them in
dependency order and, at shutdown or when one fails to start, stops the started ones in
reverse. Steps, in start order:

| step         | module              | starts                                              | stops |
|--------------|---------------------|-----------------------------------------------------|-------|
| `workdir`    | `workdir_step`      | def-dir checks, clusters.yaml read (once), work-dir lock, layout migration, token | releases the lock |
| `listen`     | `listen`            | the API's TCP port chosen, its Unix socket bound    | closes sockets, removes the socket file |
| `store`      | `store_step`        | the store, schema created or upgraded               | nothing |
| `broker`     | `broker_step`       | embedded valkey, or the `--broker` URL              | ends valkey, unless SLURM jobs still live |
| `backends`   | `backends_step`     | local and (with a slurm cluster) SLURM backends     | nothing |
| `controller` | `controller_step`   | subreaper; the controller thread (owns clusters and backends) | stops nodes; notes live SLURM jobs |
| `reloader`   | `reloader`          | definitions applied; original statuses adopted; `reload` for the API | nothing |
| `helpers`    | `helpers_step`      | Celery beat, Flower, the supervisor thread          | ends them |
| `api`        | `api_step`          | FastAPI under uvicorn, recorded for clients         | unregisters |

Other modules: `steps` (the Step protocol and StepRunner), `context` (ServeContext),
`options` (ServeOptions, what the CLI hands over), `server` (the steps wired, `run_server`).
Threads: the API reads the clusters through `Controller.clusters_view`, an immutable copy
the controller thread replaces after a clusters reload; the backends dict changes only on
the controller thread.
"""

from __future__ import annotations

from juqueue.serve.options import ServeOptions
from juqueue.serve.server import run_server

__all__ = ["ServeOptions", "run_server"]
