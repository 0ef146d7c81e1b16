#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the cluster test (tests/test_cluster.py).
#   .ci/slurm.sh start   install (apt) and start munged, slurmctld and slurmd; wait until idle
#   .ci/slurm.sh stop    stop them, by the PIDs they wrote
# Debian's packages, run as root, without systemd, cgroups or slurmdbd. Without slurmdbd there is
# no accounting, so `sacct` fails: the workflow must poll with `squeue`, which lists finished jobs
# for MinJobAge seconds: longer than the cluster test may run (its limit scales with the local
# run, 1,471 s on a loaded machine), since the test asks squeue for every job it ran. State lives
# in $SLURM_DIR (default /tmp/morphogen-slurm).
set -euo pipefail
S=${SLURM_DIR:-/tmp/morphogen-slurm}

start() {
  local t0; t0=$(date +%s)
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  fi
  stop >/dev/null 2>&1 || true
  rm -rf "$S"; mkdir -p "$S"/{state,spool,run,log} /etc/slurm
  local mem_mb; mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=morphogen-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=7200
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  slurmctld
  slurmd -N localhost
  for _ in $(seq 120); do [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break; sleep 0.25; done
  if [ "$(sinfo -h -o %t 2>/dev/null)" != idle ]; then
    tail -n 30 "$S"/log/*.log >&2
    echo "slurm: the node did not become idle" >&2
    exit 1
  fi
  echo "slurm: cluster up in $(( $(date +%s) - t0 )) s ($(nproc) CPUs, ${mem_mb} MB, partition debug)"
}

stop() {
  local f pid
  for f in "$S"/run/slurmd.pid "$S"/run/slurmctld.pid /run/munge/munged.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')" = Z ] && break
      sleep 0.1
    done
    rm -f "$f"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop; echo "slurm: stopped" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
