"""The worker of one node: the Celery worker a SLURM job (or a local process group) runs.

This folder installs as `juqueue.workers` (the `package-dir` mapping in pyproject.toml) and is
imported only under that name. It sits at the top level of the repository to keep the code that
runs on compute nodes apart from the controller's; it is not shipped separately: nodes run it
from the same installation as `serve` (`python -m juqueue.workers.node` with `serve`'s
interpreter, started by the local backend or the SLURM job script).

It never imports the controller's side (`juqueue.controller`, `store`, `backends`, `api`,
`server`: no SQLModel or FastAPI on a node; nodes never open the store), only the modules
both sides share: `broker` (keys, leases, client), `celery_app`, `definitions.models` (the
cluster's settings; it brings pydantic, `policy.duration`/`policy.scaling`, and through the
`juqueue.definitions` package the original's definition API and pyyaml), `events`, `paths`,
`process_group`, `version`.

- `node`: the entry point (Celery app, task, control thread); `app`: for `celery -A` and Flower.
- `runtime`: the live table, the claim, the node's state (draining, stopping).
- `attempt`: one attempt's process: start, wait, stop (SIGTERM, SIGKILL after the grace), report.
- `control`: the control loop: one handler per control op, heartbeats, stop/drain files, self-fencing.
- `slots`: which slots an attempt gets and their CPUs, GPUs and environment (pure).
- `command`: the run's command line and environment (prepend lines, venv, HOME expansion).
"""
