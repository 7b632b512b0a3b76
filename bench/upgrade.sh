#!/usr/bin/env bash
# bench/upgrade.sh [N] [baseline]   (default 10,000): N echo clients pinging without pause while the server
# is upgraded (tcpms-server --upgrade: SIGUSR2, the same binary as successor). Reports
# disconnects, mismatched (lost, doubled or reordered) echoes, the time until the new process
# took over and until the old one exited, the longest wait a client had for an echo during the
# upgrade, and the memory (RSS) of both processes. Exits non-zero unless every client is still
# connected with every echo right. With "baseline", the same run without the upgrade (what the
# driver and the box stall on their own).
#
# PROTOCOL=mqtt bench/upgrade.sh [N]: N MQTT 3.1.1 subscribers (a topic each, QoS 1) and one
# publisher sending QoS 1 round robin to them, at most 200 unacknowledged, before, during and
# after the upgrade (bench/upgrade_mqtt_driver.py). Reports disconnects, messages acknowledged
# to the publisher and never delivered (lost), duplicates, and the times; exits non-zero unless
# nobody was disconnected and nothing was lost. The driver never reconnects. If not every
# subscriber has its SUBACK within 300 s, it stops before the upgrade ("setup_failed", exit 1).
#
# With N > 19,500 (or DRIVER=bench) the MQTT run is bench/upgrade_mqtt_reach.sh instead:
# tcpms-bench mqtt-reach over worker processes on both sides, up to 1,000,000 clients.
#
# PROCESSES=P (default 1): the server runs as a supervisor and P worker processes, each with
# THREADS loops, and is upgraded worker by worker (docs/upgrade.md, "Worker processes"); the
# RSS figures are then the supervisors'. With one process N stays below its descriptor cap
# (RLIMIT_NOFILE - 256); one driver process (Python) holds all the clients, so N + 1 stays
# below its descriptor limit too (19,500 with a hard limit of 20,000).
#
# DIE_HALFWAY=1 (MQTT only): the same run, but the upgrade fails halfway. upgrade.binary is
# tests/integration/handover_fake.py, a stand-in new server that takes the listeners (the old
# server stops accepting), is sent the first batch of connections (parked by the old server;
# with worker processes, one batch of each worker, after their drain marks), and exits without
# answering: the last point a new server can die at and leave nothing split (docs/upgrade.md,
# "Rollback"; a real new server killed later keeps what it took). Exits non-zero unless the
# stand-in got that far, the old server logged the rollback, nobody was disconnected, nothing
# acknowledged was lost, `--upgrade` returned non-zero, the old server still serves (its pid in
# the pid file) and acknowledged QoS 1 messages after `--upgrade` returned.
# Environment: BUILD_DIR (build/release), THREADS (server loops, 2), PROTOCOL (echo, mqtt),
# PROCESSES (1), DIE_HALFWAY (unset), DRIVER (python or bench; default by N, above).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
# MQTT beyond what one Python process holds (or DRIVER=bench): tcpms-bench mqtt-reach over
# worker processes on both sides (bench/upgrade_mqtt_reach.sh). DRIVER=python keeps the Python
# driver; DIE_HALFWAY runs with it only.
if [ "${PROTOCOL:-}" = mqtt ] && [ -z "${DIE_HALFWAY:-}" ] &&
   { [ "${DRIVER:-}" = bench ] || { [ -z "${DRIVER:-}" ] && [ "$N" -gt 19500 ]; }; }; then
  exec bench/upgrade_mqtt_reach.sh "$N"
fi
B=${BUILD_DIR:-build/release}/bin
THREADS=${THREADS:-2}
PROCESSES=${PROCESSES:-1}
work=$(mktemp -d)
source bench/lib.sh
trap cleanup_all EXIT
[ -x "$B/tcpms-server" ] || { echo "missing $B/tcpms-server: build it first" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
PROTOCOL=${PROTOCOL:-echo}
extra=()
[ "$PROTOCOL" = mqtt ] && extra=(--sys-interval 0)
upgrade_args=()
if [ -n "${DIE_HALFWAY:-}" ]; then
  [ "$PROTOCOL" = mqtt ] || { echo "DIE_HALFWAY needs PROTOCOL=mqtt" >&2; exit 2; }
  fake_mode=die-after-listeners
  rollback="SIGUSR2: handover stopped"
  if [ "$PROCESSES" -gt 1 ]; then
    fake_mode=workers-die
    rollback="handover stopped; every worker keeps serving"
  fi
  printf '#!/bin/sh\nHANDOVER_FAKE=%s exec /usr/bin/python3 %s/tests/integration/handover_fake.py\n' \
    "$fake_mode" "$PWD" >"$work/dies-halfway"
  chmod +x "$work/dies-halfway"
  # The stand-in (Python) may be slow to say Hello on a busy box: the server waits for it.
  extra+=(--upgrade-binary "$work/dies-halfway" --upgrade-timeout-ms 60000)
  # No new process will write the pid file: `--upgrade` gives up after six of these, and the
  # driver goes on once the old server has logged the rollback.
  upgrade_args=(--upgrade-timeout-ms 1000)
  export UPGRADE_SETTLED_LOG="$work/server.log"
  export UPGRADE_SETTLED_TEXT="$rollback"
fi
"$B/tcpms-server" --protocol "$PROTOCOL" "${extra[@]}" --listen 127.0.0.1:0 --no-admin \
  --threads "$THREADS" --processes "$PROCESSES" --pid-file "$work/tcpms.pid" >"$work/server.log" 2>&1 &
PIDS+=($!)
addr=$(wait_listening "$work/server.log" "$!")
if [ "$PROTOCOL" = mqtt ]; then
  result=$(/usr/bin/python3 bench/upgrade_mqtt_driver.py "${addr##*:}" "$N" "$work/tcpms.pid" "$B/tcpms-server" \
    "${upgrade_args[@]}")
else
  result=$(/usr/bin/python3 bench/upgrade_driver.py "${addr##*:}" "$N" "$work/tcpms.pid" "$B/tcpms-server" "${2:-}")
fi
if [[ "$result" == *'"setup_failed"'* ]]; then
  echo "$result"
  echo "setup failed, nothing measured" >&2
  exit 1
fi
# The successor is not our child: stop it by its pid file.
new_pid=$(cat "$work/tcpms.pid" 2>/dev/null || true)
echo "$result"
grep -E "SIGUSR2|handover" "$work/server.log" >&2 || true
[ -n "$new_pid" ] && kill -TERM "$new_pid" 2>/dev/null || true
if [ -n "${DIE_HALFWAY:-}" ]; then
  grep -q "handover fake: .*dying" "$work/server.log" || { echo "the stand-in never got a batch" >&2; exit 1; }
  grep -q "$rollback" "$work/server.log" || { echo "no rollback logged: $rollback" >&2; exit 1; }
  /usr/bin/python3 -c "
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r['disconnects'] == 0 and r['lost_acked_messages'] == 0 and r['upgrade_command_rc'] not in (0, None)
         and r['old_process_alive'] and r['pid_file_after'] == r['old_pid'] and r['acked_after_upgrade_command'] else 1)
" "$result"
  exit 0
fi
if [ "$PROTOCOL" = mqtt ]; then
  /usr/bin/python3 -c "
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r['disconnects'] == 0 and r['lost_acked_messages'] == 0 and r['upgrade_command_rc'] == 0 else 1)
" "$result"
  exit 0
fi
/usr/bin/python3 -c "
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r['still_connected'] == r['clients'] and r['mismatched_echoes'] == 0 and r['upgrade_command_s'] not in (None, -1) and r['old_process_gone_s'] is not None else 1)
" "$result"
