#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of `stilts submit`
# (tests/it/slurm.rs) and for trying it by hand. Needs root and Debian's
# `slurm-wlm` and `munge` packages (`.ci/run` installs them):
#
#   tools/slurm_local.sh start    # writes /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd,
#                                 # waits until `sinfo` shows the node idle
#   tools/slurm_local.sh stop     # stops the three daemons
#   tools/slurm_local.sh status   # exit 0 when the node answers, with `sinfo`
#
# The configuration: this machine's host name, cores and memory as one node
# in a partition `debug`; ProctrackType=proctrack/linuxproc and
# TaskPlugin=task/none (no cgroups in a container), SlurmUser=root, no
# accounting daemon (so `sacct` has nothing: stilts reads `squeue` and its
# store). A configuration that is already there and not ours is left alone.
set -euo pipefail
conf=/etc/slurm/slurm.conf
marker="# written by stilts tools/slurm_local.sh"
logs=/var/log/slurm

die() {
  echo "slurm_local: $*" >&2
  exit 1
}

node_up() {
  sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    echo "slurm_local: $conf exists and was not written by this script; using it as it is" >&2
    return
  fi
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$logs"
  cat > "$conf" <<EOF
$marker
ClusterName=stilts
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
MinJobAge=60
SchedulerParameters=sched_interval=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (it writes $conf and starts the daemons)"
  command -v slurmctld >/dev/null || die "slurm-wlm is not installed (apt-get install slurm-wlm munge)"
  command -v munged >/dev/null || die "munge is not installed (apt-get install munge)"
  if node_up; then
    echo "slurm_local: already up"
    sinfo
    return
  fi
  write_conf
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then
    /usr/sbin/mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
  fi
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if node_up; then
      sinfo
      return
    fi
    # A node left down by an earlier run comes back with this.
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm_local: the node did not come up; the logs:" >&2
  tail -n 20 "$logs/slurmctld.log" "$logs/slurmd.log" >&2 || true
  exit 1
}

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  echo "slurm_local: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) node_up && sinfo ;;
  *) die "usage: tools/slurm_local.sh start|stop|status" ;;
esac
