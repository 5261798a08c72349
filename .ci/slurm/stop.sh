#!/usr/bin/env bash
# Stop the CI cluster started by .ci/slurm/start.sh: cancel its jobs, then stop slurmd,
# slurmctld and munged by their pid files (never by name: other daemons may run here).
set -uo pipefail

STATE=${LLA_SLURM_STATE:-/var/lib/lla-ci-slurm}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
    local name=$1 pidfile=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stop.sh: stopped $name ($pid)"
    fi
    rm -f "$pidfile"
}

command -v scancel >/dev/null && scancel --full --quiet --partition debug 2>/dev/null
stop_pidfile slurmd "$STATE/run/slurmd.pid"
stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid
exit 0
