#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (CI only; needs root, no systemd).
#
# Installs Debian's slurmctld/slurmd/slurm-client/munge if missing, writes
# /etc/slurm/slurm.conf and gres.conf for localhost (two fake GPUs backed by /dev/null),
# starts munged, slurmctld and slurmd by hand, and waits until the node is idle.
# The settings follow /work/shared/spec/measured.md ("Slurm ... on localhost"):
# proctrack/linuxproc + task/none (no cgroups: device constraints on fake GPUs broke
# /dev/null inside jobs), select/cons_tres with CR_Core_Memory and DefMemPerCPU (else a job
# without --mem takes the whole node), MinJobAge=3600 (squeue must still list finished jobs
# when Snakemake's slurm plugin polls and when the test checks every job of a long run;
# there is no accounting database), and
# SlurmdParameters=config_overrides (the declared node may differ from the hardware).
#
# Stop everything with .ci/slurm/stop.sh.  Environment knobs (defaults in brackets):
#   LLA_SLURM_STATE   directory for pid files, spool, logs and fake GPUs [/var/lib/lla-ci-slurm]
#   LLA_SLURM_CPUS    CPUs the node declares [max(nproc, 4)]
#   LLA_SLURM_WAIT    seconds to wait for the node to become idle [60]
set -euo pipefail

STATE=${LLA_SLURM_STATE:-/var/lib/lla-ci-slurm}
WAIT=${LLA_SLURM_WAIT:-60}
NODE=$(hostname -s)
PARTITION=debug

if [[ $(id -u) -ne 0 ]]; then
    echo "start.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 3
fi

# --- 1. packages (the install starts no daemon: no systemd here) ---
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
    fi
fi

# --- 2. configuration ---
cpus=$(nproc)
cpus=${LLA_SLURM_CPUS:-$(( cpus > 4 ? cpus : 4 ))}
mem_total_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
real_memory=$(( mem_total_mb * 3 / 4 ))
def_mem_per_cpu=$(( real_memory / cpus < 1024 ? real_memory / cpus : 1024 ))

mkdir -p /etc/slurm "$STATE"/{spool/ctld,spool/d,log,run,dev}
for i in 0 1; do ln -sfn /dev/null "$STATE/dev/fakegpu$i"; done

cat > /etc/slurm/slurm.conf <<CONF
# Written by .ci/slurm/start.sh: a one-node CI cluster on $NODE.
ClusterName=lla-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem_per_cpu
MinJobAge=3600
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_memory Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF

cat > /etc/slurm/gres.conf <<CONF
# Two fake GPUs: a GPU without File= makes the node INVAL; /dev/null stands in for the device.
AutoDetect=off
NodeName=$NODE Name=gpu File=$STATE/dev/fakegpu[0-1]
CONF

# --- 3. daemons (restarted when they run: a fresh controller has no jobs of an earlier run) ---
"$(dirname "$0")/stop.sh" >/dev/null
if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- /usr/sbin/mungekey --create
    runuser -u munge -- /usr/sbin/munged
fi
slurmctld -c                # -c: start from a clean state
slurmd

# --- 4. wait for an idle node ---
for (( waited = 0; waited < WAIT; waited++ )); do
    node_state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    if [[ $node_state == idle* ]]; then
        echo "start.sh: node $NODE idle after ${waited}s (partition $PARTITION, $cpus CPUs, gpu:2)"
        exit 0
    fi
    sleep 1
done
echo "start.sh: node $NODE not idle after ${WAIT}s (state: '${node_state:-none}'); logs in $STATE/log" >&2
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
exit 1
