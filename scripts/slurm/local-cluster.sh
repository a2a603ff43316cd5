#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd run as
# root with their configuration, state, spool and logs in one folder.
#   scripts/slurm/local-cluster.sh start DIR   prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm/local-cluster.sh stop DIR    stops the daemons started from DIR
# Needs root and Debian's slurm-wlm and munge (scripts/setup.sh installs them).
# proctrack/linuxproc and task/none need no cgroups, so it runs inside a container.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?folder}")
host=$(hostname -s)

stop() {
    for p in slurmd slurmctld munged; do
        if [ -f "$dir/$p.pid" ]; then
            kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
        fi
    done
    sleep 1
    for p in slurmd slurmctld munged; do
        [ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
        rm -f "$dir/$p.pid"
    done
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { echo "local-cluster: needs root" >&2; exit 3; }
for b in munged slurmctld slurmd sbatch; do
    command -v $b >/dev/null || { echo "local-cluster: $b not installed (apt-get install slurm-wlm munge)" >&2; exit 3; }
done
mkdir -p "$dir"/{state,spool,munge}
chmod 700 "$dir/munge"
# munge: a key of our own and a socket in our folder, so nothing of the system's is touched.
[ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" 2>/dev/null; chmod 400 "$dir/munge/munge.key"; }
sock=$dir/munge/munge.socket
munged --force --key-file="$dir/munge/munge.key" --socket="$sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed"
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
# Ports away from the defaults, so a real slurmd on the machine does not collide.
cat > "$dir/slurm.conf" <<CONF
ClusterName=regmix-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
SlurmctldPort=${REGMIX_SLURMCTLD_PORT:-16817}
SlurmdPort=${REGMIX_SLURMD_PORT:-16818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
SchedulerParameters=sched_interval=1
MinJobAge=600
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -c
slurmd -c
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "local-cluster: the node did not come up; logs in $dir" >&2
tail -5 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
stop
exit 1
