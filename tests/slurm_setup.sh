#!/usr/bin/env bash
# Make this machine a one-node Slurm cluster (Debian packages slurm-wlm and munge) for the
# factory tests. Idempotent and quick: does nothing when a node already answers `sinfo` as
# idle/mixed/allocated. Installs the packages only when running as root with apt-get.
# Exit status 0: Slurm is usable; otherwise the last line says why not.
set -u

HOST=$(hostname)
CONF=/etc/slurm/slurm.conf
MARK="# written by work-queue-py tests/slurm_setup.sh"

node_ready() {
    command -v sinfo >/dev/null 2>&1 || return 1
    state=$(timeout 5 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1)
    case "$state" in idle*|mix*|alloc*|completing*) return 0 ;; *) return 1 ;; esac
}

node_ready && { echo "slurm: node $HOST ready"; exit 0; }

if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1 \
        || ! command -v munged >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "slurm: not installed and cannot install (needs root and apt-get)"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/tmp/slurm-apt.log 2>&1
    then
        apt-get update -q >>/tmp/slurm-apt.log 2>&1
        apt-get install -y -q --no-install-recommends slurm-wlm munge >>/tmp/slurm-apt.log 2>&1 \
            || { echo "slurm: apt-get install slurm-wlm munge failed (see /tmp/slurm-apt.log)"
                 exit 1; }
    fi
fi

if [ "$(id -u)" != 0 ]; then
    echo "slurm: installed but not running, and starting it needs root"; exit 1
fi

# munge: a key, then the daemon (as the munge user, as Debian's service does).
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null
    chmod 400 /etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged || munged --force
    else
        munged --force
    fi
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null >/dev/null 2>&1 || { echo "slurm: munged does not start"; exit 1; }
fi

# slurm.conf: one node, this host; more CPU slots than cores so several 1-core workers fit.
if [ ! -f "$CONF" ] || grep -q "^$MARK" "$CONF"; then
    mem=$(awk '/MemTotal/ {print int($2/1024) - 256}' /proc/meminfo)
    mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    cat >"$CONF" <<EOF
$MARK
ClusterName=wqtest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerParameters=sched_interval=1
MessageTimeout=5
InactiveLimit=0
KillWait=2
MinJobAge=30
NodeName=$HOST CPUs=16 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
fi

pgrep -x slurmctld >/dev/null || slurmctld || { echo "slurm: slurmctld does not start"; exit 1; }
pgrep -x slurmd >/dev/null || slurmd || { echo "slurm: slurmd does not start"; exit 1; }
for _ in $(seq 100); do
    node_ready && { echo "slurm: node $HOST ready"; exit 0; }
    sleep 0.2
done
timeout 5 scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
node_ready && { echo "slurm: node $HOST ready"; exit 0; }
echo "slurm: node $HOST not ready: $(timeout 5 sinfo -h -N -o '%N %T %E' 2>&1 | head -1)"
exit 1
