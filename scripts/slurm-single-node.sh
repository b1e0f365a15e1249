#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine: the local host is both controller and
# compute node. For testing `loes slurm` (tests/cli/test_slurm_cluster.py); `.ci/run` calls it.
#
#   scripts/slurm-single-node.sh          install nothing; write the config, start the daemons
#   scripts/slurm-single-node.sh --stop   stop the daemons this script started
#
# Needs root (or passwordless sudo) and Debian's slurm-wlm and munge packages
# (`apt-get install slurm-wlm munge`; `.ci/run` installs them when missing). Writes
# /etc/slurm/slurm.conf (refusing to replace one it did not write), with
# ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed, so it runs in a
# container), SlurmUser=root, and the node's CPUs and memory read from this host. Safe to run
# again: running daemons are kept. Exits 0 once `sinfo` shows the node idle.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    exec sudo -n "$0" "$@"
fi
conf=/etc/slurm/slurm.conf
marker="# written by loes scripts/slurm-single-node.sh"
node=$(hostname -s)

if [ "${1:-}" = "--stop" ]; then
    for daemon in slurmd slurmctld; do
        pidfile=/run/$daemon.pid
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    exit 0
fi

for tool in slurmctld slurmd munged sinfo sbatch; do
    command -v "$tool" >/dev/null || {
        echo "slurm-single-node: $tool not found; install slurm-wlm and munge" >&2
        exit 1
    }
done
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    echo "slurm-single-node: $conf exists and was not written by this script; not replacing it" >&2
    exit 1
fi

cpus=$(nproc)
# leave 1 GiB (at least a quarter) of the memory to the system
total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
memory_mb=$((total_mb - (total_mb / 4 < 1024 ? total_mb / 4 : 1024)))

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXXXX)
cat >"$tmp" <<EOF
$marker
ClusterName=loes-single-node
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 "$tmp"
mv "$tmp" "$conf"

# munge: the key the package made, the daemon as its own user
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create; else create-munge-key; fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge
chown munge:munge /run/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- munged
fi

running() { [ -f "/run/$1.pid" ] && kill -0 "$(cat "/run/$1.pid")" 2>/dev/null; }
running slurmctld || slurmctld
running slurmd || slurmd

for _ in $(seq 60); do
    state=$(sinfo --noheader --nodes="$node" --format=%T 2>/dev/null || true)
    case "$state" in
    idle* | mixed* | allocated*)
        echo "slurm-single-node: $node is $state ($cpus CPUs, ${memory_mb} MB)"
        exit 0
        ;;
    down* | drain*)
        scontrol update nodename="$node" state=resume 2>/dev/null || true
        ;;
    esac
    sleep 1
done
echo "slurm-single-node: the node did not come up; see /var/log/slurm/" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
