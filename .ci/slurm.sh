#!/usr/bin/env bash
# A real one-node SLURM cluster (slurmctld + slurmd + munged, Debian's slurm-wlm 22.05) for CI and
# for trying the cluster path on one machine (docs/slurm.md):
#   .ci/slurm.sh up      install slurm-wlm + munge if missing, write slurm.conf, start, wait for idle
#   .ci/slurm.sh down    cancel jobs, stop the daemons by PID file, remove the conf link
#   .ci/slurm.sh status  scontrol ping + sinfo
# Needs root (the daemons run as root, jobs as the submitting user) and no running SLURM. State,
# logs and PID files live under $LIT_SISR_SLURM_DIR (default /tmp/lit-sisr-slurm), never in the
# working tree; /etc/slurm/slurm.conf becomes a link to the generated file (what sbatch reads).
set -euo pipefail

DIR="${LIT_SISR_SLURM_DIR:-/tmp/lit-sisr-slurm}"
CONF_LINK=/etc/slurm/slurm.conf
RUNTIME_DIR=/run/munge

say() { echo "slurm.sh: $*" >&2; }
die() { echo "error: slurm.sh: $*" >&2; exit 2; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
  say "installing slurm-wlm and munge (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {
  local host hw
  host="$(hostname -s)"
  # the node's CPUs, boards, sockets, cores, threads and memory as slurmd sees them
  hw="$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+ //')"
  rm -rf "$DIR/state"  # a fresh cluster: no jobs restored from an earlier one
  mkdir -p "$DIR"/{state/ctld,state/d,run,log}
  # cred_expire=10 and the short scheduler intervals: a requeued job restarts after ~15 s instead
  # of ~146 s (the default credential lifetime is 120 s).
  cat >"$DIR/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MailProg=/bin/true
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
JobRequeue=1
ReturnToService=2
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${host} NodeAddr=127.0.0.1 ${hw} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mkdir -p /etc/slurm
  if [ -e "$CONF_LINK" ] && [ "$(readlink "$CONF_LINK" || true)" != "$DIR/slurm.conf" ]; then
    die "$CONF_LINK exists and is not this script's (a SLURM is configured here already; expected none)"
  fi
  ln -sfn "$DIR/slurm.conf" "$CONF_LINK"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  install -d -o munge -g munge -m 0755 "$RUNTIME_DIR"
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --force
  touch "$DIR/run/munged.ours"  # stopped by `down` (a munged found running is left alone)
  # munged's own PID file (/run/munge/munged.pid) is used to stop it
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start (see /var/log/munge/munged.log)"
}

wait_until() {  # seconds, description, command...
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return; sleep 0.1; done
  die "$what within ${limit}s (logs: $DIR/log)"
}

node_idle() { sinfo -h -N -o %T | grep -qx idle; }
ctld_up() { scontrol ping | grep -q "is UP"; }

up() {
  install_packages
  if [ -f "$DIR/run/slurmctld.pid" ] && kill -0 "$(cat "$DIR/run/slurmctld.pid")" 2>/dev/null; then
    say "already running ($DIR)"; wait_until 30 "node not idle" node_idle; return
  fi
  write_conf
  start_munge
  slurmctld -c
  wait_until 30 "slurmctld did not answer" ctld_up
  slurmd
  wait_until 60 "node not idle" node_idle
  say "up: $(sinfo -h -o '%P %D %c cpus %m MB %T') (state and logs: $DIR)"
}

stop_pid_file() {  # file
  local pid
  [ -f "$1" ] || return 0
  pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$1"
}

down() {
  if command -v scancel >/dev/null && ctld_up 2>/dev/null; then
    scancel --full --quiet --user="$(id -un)" || true
    for _ in $(seq 150); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop_pid_file "$DIR/run/slurmd.pid"
  stop_pid_file "$DIR/run/slurmctld.pid"
  if [ -f "$DIR/run/munged.ours" ]; then stop_pid_file "$RUNTIME_DIR/munged.pid"; rm -f "$DIR/run/munged.ours"; fi
  if [ "$(readlink "$CONF_LINK" 2>/dev/null || true)" = "$DIR/slurm.conf" ]; then rm -f "$CONF_LINK"; fi
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) scontrol ping && sinfo ;;
  *) die "usage: $0 up|down|status (got '${1:-}')" ;;
esac
