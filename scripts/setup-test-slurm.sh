#!/usr/bin/env bash
# Install and start a single-node SLURM for JuQueue's SLURM tests (run as root).
#
# Idempotent: when sbatch works and sinfo shows the node up, it exits 0 at once.
# Facts that make SLURM 22.05 (Debian slurm-wlm) work as root in a container without
# systemd or cgroups: proctrack/linuxproc, task/none, cons_tres with CR_Core,
# SlurmdParameters=config_overrides (the node may declare more CPUs than the host
# has) and an OverSubscribe=YES partition so several one-node jobs share the host.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
RUN_DIR=/run/slurm
NODE="$(hostname -s)"
NODE_CPUS="${JUQUEUE_TEST_SLURM_CPUS:-8}"
WAIT_S="${JUQUEUE_TEST_SLURM_WAIT:-60}"

say() { echo "setup-test-slurm: $*" >&2; }
die() { say "ERROR: $*"; dump_logs; exit 1; }

dump_logs() {
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [ -f "$f" ]; then
            echo "----- tail $f -----" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
}

node_state() {
    # Prints the node's state (idle, mixed, allocated, down*, drained, ...) or nothing.
    sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true
}

node_is_up() {
    case "$(node_state)" in
        idle|mixed|allocated|completing|idle+*|mixed+*|allocated+*) return 0 ;;
        *) return 1 ;;
    esac
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

already_working() {
    # A daemon this script started that has died is not "working", even while sinfo
    # still shows the node idle (slurmctld notices only after SlurmdTimeout).
    if grep -qs 'Written by JuQueue' "$CONF"; then
        pgrep -x slurmctld >/dev/null || return 1
        pgrep -x slurmd >/dev/null || return 1
    fi
    command -v sbatch >/dev/null 2>&1 || return 1
    command -v sinfo >/dev/null 2>&1 || return 1
    local ping; ping="$(timeout 10 scontrol ping 2>/dev/null || true)"
    [[ "$ping" == *"is UP"* ]] || return 1
    node_is_up
}

write_conf() {  # $1 = where: the whole slurm.conf this script wants
    # Memory the node declares: well under what the host has, so slurmd never rejects it.
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 / 2}' /proc/meminfo)
    [ "$mem_mb" -gt 8000 ] && mem_mb=8000
    cat >"$1" <<EOF
# Written by JuQueue's scripts/setup-test-slurm.sh: a single-node test SLURM.
ClusterName=juqueuetest
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$NODE CPUs=$NODE_CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES OverSubscribe=YES MaxTime=INFINITE State=UP
EOF
}

# Up and configured as this script says: nothing to do (a changed setting restarts the daemons).
NEW_CONF="$(mktemp)"
trap 'rm -f "$NEW_CONF"' EXIT
write_conf "$NEW_CONF"
if already_working && cmp -s "$NEW_CONF" "$CONF"; then
    say "SLURM already up (node $NODE: $(node_state)); nothing to do"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { say "must run as root"; exit 1; }

# ---- packages ---------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
        || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    policy="$(apt-cache policy slurm-wlm 2>/dev/null || true)"
    if [[ "$policy" != *"Candidate: "[0-9]* ]]; then
        say "apt-get update (no slurm-wlm candidate known yet)"
        apt-get update -q
    fi
    say "installing slurm-wlm and munge"
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

# ---- munge ------------------------------------------------------------------------------
mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
MUNGE_USER=root
if id munge >/dev/null 2>&1; then MUNGE_USER=munge; fi
chown -R "$MUNGE_USER:" /etc/munge /var/log/munge /var/lib/munge /run/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    if [ "$MUNGE_USER" = munge ]; then
        runuser -u munge -- munged --force
    else
        munged --force
    fi
    for _ in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n | unmunge >/dev/null || die "munged does not answer"
fi

# ---- slurm.conf -------------------------------------------------------------------------
mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR" "$RUN_DIR"
CONF_CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF"; then
    say "writing $CONF"
    install -m 0644 "$NEW_CONF" "$CONF"
    CONF_CHANGED=1
fi

# ---- daemons (no systemd here: start them as daemons) -----------------------------------

stop_daemon() {  # $1 = pid file; stop only the daemon that pid file names
    if pid_alive "$1"; then
        local pid; pid="$(cat "$1")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
}

if [ "$CONF_CHANGED" -eq 1 ]; then
    stop_daemon "$RUN_DIR/slurmd.pid"
    stop_daemon "$RUN_DIR/slurmctld.pid"
fi
if ! pid_alive "$RUN_DIR/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld || die "slurmctld did not start"
fi
if ! pid_alive "$RUN_DIR/slurmd.pid"; then
    say "starting slurmd"
    slurmd || die "slurmd did not start"
fi

# ---- wait for the node (bounded), resume it if SLURM left it down/drained ---------------
deadline=$((SECONDS + WAIT_S))
while ! node_is_up; do
    state="$(node_state)"
    case "$state" in
        down*|drain*|drained*|fail*)
            say "node $NODE is $state: resuming"
            scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        die "node $NODE not up after ${WAIT_S}s (state: ${state:-unknown})"
    fi
    sleep 1
done
say "node $NODE is $(node_state)"

# ---- smoke check ------------------------------------------------------------------------
out="$(timeout 60 srun -N1 -n1 --time=1 /bin/echo juqueue-slurm-ok 2>&1)" \
    || die "srun smoke check failed: $out"
[ "$out" = "juqueue-slurm-ok" ] || die "srun smoke check printed: $out"
say "SLURM ready: $(sinfo -h -o '%P %a %D %T' | tr '\n' ' ')"
