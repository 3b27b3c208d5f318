#!/usr/bin/env bash
# A one-node Slurm (munge + slurmctld + slurmd) and a local Ray head, all on 127.0.0.1, for the
# cluster-executor tests. Source it, then `services_start`; `services_stop` stops every daemon by the
# PID it recorded (never by name). Installs the Debian packages and ray when they are missing.
#   source .ci/services.sh && services_start && ... && services_stop
# Exports SLURM_CONF (our slurm.conf, not /etc's) and RAY_ADDRESS for the tests.

SERVICES_DIR=${SERVICES_DIR:-/tmp/lmfoundry-services}

services_install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  python -c "import ray" 2>/dev/null || pip install -q "ray[default]"
}

_wait_for() {  # _wait_for SECONDS COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { echo "services: timed out waiting for: $*" >&2; return 1; }
    sleep 0.5
  done
}

services_start() {
  local started=$SECONDS
  services_install
  mkdir -p "$SERVICES_DIR"/{state,spool,log}
  # munge: the key from the package, its own user, its own socket directory
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge; chmod 0755 /run/munge; chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  _wait_for 10 test -s /run/munge/munged.pid
  echo "$(cat /run/munge/munged.pid)" > "$SERVICES_DIR/munged.pid"
  local mem_mb; mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  cat > "$SERVICES_DIR/slurm.conf" <<CONF
ClusterName=lmfoundry-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
StateSaveLocation=$SERVICES_DIR/state
SlurmdSpoolDir=$SERVICES_DIR/spool
SlurmctldPidFile=$SERVICES_DIR/slurmctld.pid
SlurmdPidFile=$SERVICES_DIR/slurmd.pid
SlurmctldLogFile=$SERVICES_DIR/log/slurmctld.log
SlurmdLogFile=$SERVICES_DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$SERVICES_DIR/slurm.conf"
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  _wait_for 20 test -s "$SERVICES_DIR/slurmctld.pid"
  /usr/sbin/slurmd -f "$SLURM_CONF" -N localhost
  _wait_for 20 test -s "$SERVICES_DIR/slurmd.pid"
  _wait_for 30 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
  # Ray: the head on loopback only; --block keeps one parent process whose exit stops the rest
  ray start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=2 --include-dashboard=false \
      --disable-usage-stats --block > "$SERVICES_DIR/log/ray.log" 2>&1 &
  echo $! > "$SERVICES_DIR/ray.pid"
  export RAY_ADDRESS=127.0.0.1:6379
  _wait_for 60 python -c "import ray; ray.init(address='$RAY_ADDRESS', log_to_driver=False); ray.shutdown()"
  echo "services: slurm (partition debug, 2 CPUs, ${mem_mb} MB) and ray ($RAY_ADDRESS) up in $((SECONDS - started)) s"
}

services_stop() {
  local name pid
  for name in ray slurmd slurmctld munged; do
    [[ -s "$SERVICES_DIR/$name.pid" ]] || continue
    pid=$(cat "$SERVICES_DIR/$name.pid")
    kill "$pid" 2>/dev/null && for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$SERVICES_DIR/$name.pid"
  done
  echo "services: stopped"
}
