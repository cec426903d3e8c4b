#!/bin/bash
#SBATCH --job-name=jq-booster-3-a1b2c3d4
#SBATCH --comment=juqueue:a1b2c3d4
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --partition=booster
#SBATCH --account=proj-ml
#SBATCH --qos=normal
#SBATCH --time=1-00:00:00
#SBATCH --cpus-per-task=48
#SBATCH --mem=500G
#SBATCH --gres=gpu:4
#SBATCH --constraint=largedata
#SBATCH --exclusive
#SBATCH --output=/p/scratch/proj/juqueue-work/.juqueue/nodes/booster-3/job.log
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@300
#SBATCH --hint=nomultithread
#SBATCH --mail-type=NONE
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
module load Stages/2024
module load CUDA
set -u

export OMP_PROC_BIND=true
export HF_HOME='/p/scratch/proj/hf cache'
export JUQUEUE_WORK_DIR=/p/scratch/proj/juqueue-work
export JUQUEUE_NODE=booster-3
export JUQUEUE_NODE_TOKEN=a1b2c3d4
PYTHON=/p/project/proj/venv/bin/python
DRAIN_FILE=/p/scratch/proj/juqueue-work/.juqueue/nodes/booster-3/drain

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
"$PYTHON" -m juqueue.workers.node --work-dir "$JUQUEUE_WORK_DIR" --node "$JUQUEUE_NODE" --cluster booster &
worker_pid=$!
while kill -0 "$worker_pid" 2>/dev/null; do
    wait "$worker_pid"
done
wait "$worker_pid"
status=$?
echo "juqueue job: worker of node $JUQUEUE_NODE exited with status $status" >&2
exit "$status"
