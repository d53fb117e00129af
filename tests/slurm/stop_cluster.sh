#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_cluster.sh started in DIR (default /tmp/weightscape-slurm).
# Cancels its jobs, then stops slurmd, slurmctld and munged by their pid files under DIR/run (a pid is only
# signalled while it still belongs to the daemon of that name), and removes the link /etc/slurm/slurm.conf if it
# points into DIR. Safe to run twice or on a half-started cluster.
# Logs stay under DIR/log; the next start begins with fresh state.
set -euo pipefail

DIR=${1:-/tmp/weightscape-slurm}
TIMEOUT=${SLURM_STOP_TIMEOUT:-30}  # seconds per daemon before SIGKILL
say() { echo "stop_cluster: $*" >&2; }

if [ ! -d "$DIR" ]; then
    say "nothing to stop: $DIR does not exist"
    exit 0
fi
DIR=$(cd "$DIR" && pwd)
export SLURM_CONF="$DIR/slurm.conf"

pid_of() {  # pid_of NAME: the live pid of daemon NAME from DIR/run/NAME.pid, or nothing
    local file="$DIR/run/$1.pid" pid
    [ -s "$file" ] || return 0
    pid=$(<"$file")
    # (a zombie counts as stopped: pid 1 of a container may never reap it)
    if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
        echo "$pid"
    fi
}

# Jobs first, so that no job step outlives the daemons (bounded wait until squeue shows none running).
if [ -n "$(pid_of slurmctld)" ] && [ -f "$SLURM_CONF" ]; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        say "cancelling jobs: $(echo $jobs)"
        scancel $jobs 2>/dev/null || true
        deadline=$((SECONDS + TIMEOUT))
        while [ -n "$(squeue -h -t PD,R,CG -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
            sleep 0.2
        done
    fi
fi

for name in slurmd slurmctld munged; do
    pid=$(pid_of "$name")
    if [ -z "$pid" ]; then
        rm -f "$DIR/run/$name.pid"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while [ -n "$(pid_of "$name")" ] && [ $SECONDS -lt $deadline ]; do
        sleep 0.1
    done
    if [ -n "$(pid_of "$name")" ]; then
        say "$name ($pid) ignored SIGTERM for ${TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while [ -n "$(pid_of "$name")" ]; do sleep 0.1; done
    fi
    rm -f "$DIR/run/$name.pid"
    say "stopped $name ($pid)"
done

# The default-config link that start_cluster.sh made, if it still points here.
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$SLURM_CONF" ]; then
    rm -f /etc/slurm/slurm.conf
fi
