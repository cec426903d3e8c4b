#!/bin/bash
@{directives}
# JuQueue node job: runs one Celery worker for one node, rendered by
# juqueue.backends.slurm_script. No secret is written here: the worker reads the broker
# URL from the 0600 file in the work dir itself.
set -u

# Submitted with --export=NONE: SLURM built the user's login environment. Make sure the
# basics exist, and let srun inside the job export that environment as usual.
export PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}"
unset SLURM_EXPORT_ENV

# Prologue from the cluster definition (module loads, ...); module scripts often use
# unset variables, so it runs without `set -u`.
set +u
@{prologue}
set -u

@{env_exports}
export JUQUEUE_WORK_DIR=@{work_dir}
export JUQUEUE_NODE=@{node}
export JUQUEUE_NODE_TOKEN=@{token}
PYTHON=@{python}
DRAIN_FILE=@{drain_file}

worker_pid=""

# Wall time is near (sbatch --signal=B:USR1, signal_lead seconds before the limit).
# Celery uses USR1 itself (traceback dump), so it is not forwarded: the node drains
# through JuQueue, which stops its runs in time.
on_usr1() {
    echo "juqueue job: USR1 (wall time near): draining node $JUQUEUE_NODE" >&2
    mkdir -p "${DRAIN_FILE%/*}" && touch "$DRAIN_FILE"
}

# scancel / job end: pass TERM on to the worker (a warm shutdown) and keep waiting.
# The stop file first: the worker's main thread may take seconds to handle its own TERM
# under load, and a run that exits 0 on TERM meanwhile must not count as completed.
on_term() {
    echo "juqueue job: TERM: stopping the worker of node $JUQUEUE_NODE" >&2
    mkdir -p "${DRAIN_FILE%/*}" && : > "${DRAIN_FILE%/*}/stopping"
    if [ -n "$worker_pid" ]; then kill -TERM "$worker_pid" 2>/dev/null; fi
}

trap on_usr1 USR1
trap on_term TERM

# In the background: bash runs a trap only once its foreground child has exited, and
# `wait` returns early when a trapped signal arrives, hence the loop.
"$PYTHON" -m juqueue.workers.node --work-dir "$JUQUEUE_WORK_DIR" --node "$JUQUEUE_NODE" --cluster @{cluster} &
worker_pid=$!
while kill -0 "$worker_pid" 2>/dev/null; do
    wait "$worker_pid"
done
wait "$worker_pid"
status=$?
echo "juqueue job: worker of node $JUQUEUE_NODE exited with status $status" >&2
exit "$status"
