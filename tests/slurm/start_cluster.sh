#!/usr/bin/env bash
# Start a private single-node SLURM cluster on localhost (for tests/test_slurm.py, or to try profiles/slurm by hand).
#
#   tests/slurm/start_cluster.sh [DIR]     (default DIR: /tmp/weightscape-slurm; run as root)
#   export SLURM_CONF=DIR/slurm.conf       (printed last; optional while /etc/slurm/slurm.conf links there, see below)
#   tests/slurm/stop_cluster.sh [DIR]
#
# Everything lives under DIR: slurm.conf, a private munge key and socket, slurmctld state, slurmd spool, logs and
# pid files. The one thing outside DIR is the symlink /etc/slurm/slurm.conf -> DIR/slurm.conf: snakemake's
# slurm-jobstep plugin (0.6) removes SLURM_CONF from the environment of the `srun` it runs inside each job, so the
# job step only finds the cluster at the default config path. A real /etc/slurm/slurm.conf is never replaced (the
# start fails instead), so only one such test cluster runs on a machine at a time.
# Ports: SLURMCTLD_PORT (default 6817) and SLURMD_PORT (default 6818).
# Needs the Debian packages slurmctld slurmd slurm-client munge: `make slurm` installs them (root + apt), or
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
# Readiness is polled (munge round trip, `scontrol ping`, node idle in `sinfo`), never waited for with fixed sleeps.
# Started twice on the same DIR: reports the running cluster and exits 0. A half-running cluster, a cluster running
# from another DIR, or ports taken by another process is an error (exit 1) that says what to do.
set -euo pipefail

DIR=${1:-/tmp/weightscape-slurm}
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
TIMEOUT=${SLURM_START_TIMEOUT:-60}  # seconds per daemon to become ready

die() { echo "start_cluster: error: $*" >&2; exit 1; }
say() { echo "start_cluster: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their submitting user)"
missing=()
for tool in munged munge unmunge slurmctld slurmd scontrol sinfo sbatch squeue scancel srun; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: run \`make slurm\` (root + apt) or
  apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
export SLURM_CONF="$DIR/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket.2"
# socket paths are limited to 107 bytes
[ ${#MUNGE_SOCKET} -lt 100 ] || die "DIR is too long for a unix socket path: $DIR"

# pid files -> pids of live daemons (the pid is checked against the daemon's name, so a reused pid is not taken)
alive() {  # alive NAME PIDFILE
    local pid
    [ -s "$2" ] || return 1
    pid=$(<"$2")
    [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

munge_ok() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_ok() { [[ $(sinfo -h -N -o %T 2>/dev/null) =~ ^(idle|mixed|allocated)$ ]]; }

wait_for() {  # wait_for WHAT CHECK NAME PIDFILE LOG: poll CHECK until it succeeds, the daemon dies, or TIMEOUT
    local what=$1 check=$2 name=$3 pidfile=$4 log=$5 deadline=$((SECONDS + TIMEOUT))
    until $check; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$log" >&2 2>/dev/null || true
            die "$what not ready after ${TIMEOUT}s (log: $log); stop with tests/slurm/stop_cluster.sh $DIR"
        fi
        if [ -s "$pidfile" ] && ! alive "$name" "$pidfile"; then
            tail -n 20 "$log" >&2 2>/dev/null || true
            die "$name exited during start-up (log: $log)"
        fi
        sleep 0.2
    done
}

# /etc/slurm/slurm.conf: ours (a link into DIR), free, a stale link of an earlier test cluster, or a real config.
LINK=/etc/slurm/slurm.conf
if [ -L "$LINK" ]; then
    target=$(readlink "$LINK")
    other=$(dirname "$target")
    if [ "$target" != "$SLURM_CONF" ] && [ -e "$target" ] &&
        { alive slurmctld "$other/run/slurmctld.pid" || alive slurmd "$other/run/slurmd.pid"; }; then
        die "another test cluster is running in $other ($LINK points there): tests/slurm/stop_cluster.sh $other"
    fi
elif [ -e "$LINK" ]; then
    die "$LINK exists and is not a link of this script (a real SLURM installation?): not replacing it. The test
  cluster needs the default config path (snakemake's slurm-jobstep drops SLURM_CONF inside jobs)"
fi

running=()
alive munged "$DIR/run/munged.pid" && running+=(munged)
alive slurmctld "$DIR/run/slurmctld.pid" && running+=(slurmctld)
alive slurmd "$DIR/run/slurmd.pid" && running+=(slurmd)
if [ ${#running[@]} = 3 ] && munge_ok && ctld_ok && node_ok; then
    ln -sfn "$SLURM_CONF" "$LINK"
    say "already running in $DIR (pids $(cat "$DIR"/run/{munged,slurmctld,slurmd}.pid | tr '\n' ' '))"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
elif [ ${#running[@]} != 0 ]; then
    die "a cluster in $DIR is partly running (${running[*]}): run tests/slurm/stop_cluster.sh $DIR first"
fi

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    port_taken "$port" && die "port $port on localhost is taken (another slurmctld/slurmd?): stop it, or choose
  other ports with SLURMCTLD_PORT=... SLURMD_PORT=..."
done

# A fresh layout on every start (logs of the previous start are kept under log/).
rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
chmod 0700 "$DIR/munge"

# --- munge: a private key and socket; the daemon runs as root (--force), which needs no chown of DIR
if [ ! -s "$DIR/munge/munge.key" ]; then
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$DIR/munge/munge.key"
    else
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
fi
chmod 0400 "$DIR/munge/munge.key"
munged --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || die "munged did not start (log: $DIR/log/munged.log)"
wait_for munge munge_ok munged "$DIR/run/munged.pid" "$DIR/log/munged.log"

# --- slurm.conf: this machine's CPUs as slurmd sees them; memory: all but 1 GiB, at least 8 GiB so that every
# rule's request (the largest is mem_mb=8000) can be scheduled on a small CI machine. Memory is not enforced here
# (no cgroups), and config_overrides keeps a node whose real memory is smaller from being drained.
hardware=$(slurmd -C | head -n 1)
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hardware"; }
memory=$(($(field RealMemory) - 1024))
[ "$memory" -ge 8192 ] || memory=8192
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/start_cluster.sh: a single-node test cluster on localhost, state under $DIR.
ClusterName=weightscape
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
# Jobs asking for no memory get 500 MB per CPU, not the whole node (which would run them one at a time).
DefMemPerCPU=500
# Finished jobs stay visible to squeue/scontrol for 5 minutes: the snakemake plugin's status query with squeue
# relies on it (no slurmdbd here, so sacct has nothing to read).
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# One line per finished job (id, state, exit code): evidence that the test's jobs ran here.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(field CPUs) Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) \
  CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p "$(dirname "$LINK")"
ln -sfn "$SLURM_CONF" "$LINK"

# --- slurmctld (-c: no state from an earlier start), then slurmd on the node "localhost"
slurmctld -c -f "$SLURM_CONF" || die "slurmctld did not start (log: $DIR/log/slurmctld.log)"
wait_for slurmctld ctld_ok slurmctld "$DIR/run/slurmctld.pid" "$DIR/log/slurmctld.log"
slurmd -c -N localhost -f "$SLURM_CONF" || die "slurmd did not start (log: $DIR/log/slurmd.log)"
wait_for "node localhost" node_ok slurmd "$DIR/run/slurmd.pid" "$DIR/log/slurmd.log"

say "running in $DIR: $(sinfo -h -N -o '%N %T cpus=%c mem=%mMB'), slurmctld port $CTLD_PORT"
echo "export SLURM_CONF=$SLURM_CONF"
