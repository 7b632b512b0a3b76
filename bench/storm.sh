#!/usr/bin/env bash
# bench/storm.sh [N] [--processes P] [--mosquitto M]: a reconnect storm after a crash.
#
# N MQTT clients (default 200,000) connect and subscribe (tcpms-bench mqtt-storm); once every
# one is subscribed the server is killed with SIGKILL (every process of it at once, as a crash
# or an OOM kill would) and restarted at once on the same port; every client reconnects on its
# own, at once (backoff only after a failed attempt). Reported per run: time from the first
# drop until every client is subscribed again, failed attempts by cause, clients never back,
# and the server's peak user-space memory (VmRSS summed over all its processes, sampled from
# /proc every 0.2 s) while holding the clients and during the storm.
#
# Runs, side by side in one invocation:
#   tcpms     N clients over P worker processes (default: N / PER_PROCESS rounded up;
#             RLIMIT_NOFILE is per process here), --threads 1 each
#   tcpms     M clients on 1 worker process  } M (default 19,000: what one process with
#   mosquitto M clients (one process)        } 20,000 descriptors can hold); --mosquitto 0 skips
# Mosquitto runs from a generated config (no persistence); the same sysctls serve both (those
# tcpms-doctor recommends for N, applied first).
#
# Environment: BUILD_DIR (build/release), MOSQUITTO (/usr/sbin/mosquitto), PER_PROCESS (19000),
# STORM_TIMEOUT (300 s after the first drop), MAX_PENDING (2000 setup connects in flight per
# bench process), STORM_PENDING (0: every client reconnects at once; K: at most K reconnect
# attempts in flight per bench process, for when the bench cannot keep up: see docs/bench.md,
# mqtt-storm), RETRY_MIN (0.1 s), RETRY_MAX (5 s), KEEP_LOGS (a directory to copy the servers'
# logs and the bench's results into after each run).
# Prints a Markdown table. Exits non-zero unless every client of every run came back.
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000
M=19000
processes=
while [ $# -gt 0 ]; do
  case $1 in
    --processes) processes=$2; shift 2 ;;
    --mosquitto) M=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) N=$1; shift ;;
  esac
done
B=${BUILD_DIR:-build/release}/bin
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
PER_PROCESS=${PER_PROCESS:-19000}
STORM_TIMEOUT=${STORM_TIMEOUT:-300}
MAX_PENDING=${MAX_PENDING:-2000}
RETRY_MIN=${RETRY_MIN:-0.1}
RETRY_MAX=${RETRY_MAX:-5}
KEEP_LOGS=${KEEP_LOGS:-}
STORM_PENDING=${STORM_PENDING:-0}
processes=${processes:-$(( (N + PER_PROCESS - 1) / PER_PROCESS ))}
[ "$N" -le 250000 ] || { echo "storm.sh: at most 250,000 clients on this shared machine" >&2; exit 2; }
for b in tcpms-server tcpms-bench tcpms-doctor; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build the release preset first" >&2; exit 1; }
done
[ "$M" = 0 ] || [ -x "$MOSQUITTO" ] || { echo "missing $MOSQUITTO (apt-get install mosquitto), or --mosquitto 0" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop_sampler; cleanup_all' EXIT
check_memory "$N" 14336  # as scale.sh --mqtt: kernel pair + both sides' user space

"$B/tcpms-doctor" --connections "$N" --role both --apply >"$work/doctor.txt" 2>&1 || true

# --- the server: start, kill, restart -------------------------------------------------------
# launch NAME PORT WORKERS LOG -> sets PID, returns at once (Mosquitto needs a real port)
launch() {
  local name=$1 port=$2 workers=$3 log=$4
  if [ "$name" = tcpms ]; then
    "$B/tcpms-server" --protocol mqtt --listen "127.0.0.1:$port" --processes "$workers" --threads 1 \
      --no-admin >"$log" 2>&1 &
  else
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n' \
      "$port" >"$work/mosquitto.conf"
    # Same descriptor limit as tcpms and the bench get: the hard limit (20000 here).
    (ulimit -n "$(ulimit -Hn)"; exec "$MOSQUITTO" -c "$work/mosquitto.conf") >"$log" 2>&1 &
  fi
  PID=$!
  PIDS+=("$PID")
}

# listening PORT: true once something listens on 127.0.0.1:PORT
listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# start_server NAME WORKERS -> sets PID and ADDR: a fresh server on a free port, every worker
# listening
start_server() {
  local name=$1 workers=$2 log="$work/$1.$RANDOM.log" port
  if [ "$name" = tcpms ]; then
    launch tcpms 0 "$workers" "$log"
    ADDR=$(wait_listening "$log" "$PID")
    wait_workers "$log" "$workers"
    return
  fi
  port=$(free_port)
  launch "$name" "$port" 1 "$log"
  for _ in $(seq 100); do listening "$port" && { ADDR=127.0.0.1:$port; return; }; sleep 0.1; done
  echo "storm.sh: $name did not start" >&2; cat "$log" >&2; exit 1
}

# crash PID [wait]: SIGKILL to the server and every child of it in one kill(1). With "wait",
# returns once all of them are gone: a dying process's listener holds the port until the
# kernel has closed its last socket (seconds with 200,000), and Mosquitto refuses a port
# something listens on. tcpms-server waits for such a port itself (port_wait_ms: it sees
# the holders are exiting), so its restart follows the kill at once.
crash() {
  local pid=$1 wait_gone=${2:-} all
  all="$pid $(pgrep -P "$pid" | tr '\n' ' ' || true)"  # none: one process
  # shellcheck disable=SC2086
  kill -KILL $all 2>/dev/null || true
  [ -n "$wait_gone" ] || return 0
  wait "$pid" 2>/dev/null || true
  for p in $all; do
    while [ -e "/proc/$p" ]; do sleep 0.005; done
  done
}

# --- memory: VmRSS of the server and its children, summed, every 0.2 s -----------------------
# The sampler reads "<phase> <pid>" from $work/watch each round and appends "<phase> <kB>".
sampler=
start_sampler() {
  : >"$work/rss"
  (
    while [ -e "$work/watch" ]; do
      read -r phase pid <"$work/watch" || true
      total=0
      for p in $pid $(pgrep -P "$pid" 2>/dev/null); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$(( total + ${kb:-0} ))
      done
      [ "$total" -gt 0 ] && echo "$phase $total" >>"$work/rss"
      sleep 0.2
    done
  ) &
  sampler=$!
}
stop_sampler() {
  rm -f "$work/watch"
  [ -z "$sampler" ] || wait "$sampler" 2>/dev/null || true
  sampler=
}
peak_mib() { awk -v ph="$1" '$1 == ph && $2 > m {m = $2} END {printf "%.0f", m / 1024}' "$work/rss"; }

# --- one run ---------------------------------------------------------------------------------
# storm NAME CLIENTS WORKERS: prints one Markdown table row; sets OK=0 when a client is not back
OK=1
storm() {
  local name=$1 n=$2 workers=$3 out="$work/$1-$2.json"
  rm -f "$work"/ready.*
  start_server "$name" "$workers"
  local port=${ADDR##*:} pid=$PID
  echo "hold $pid" >"$work/watch"
  start_sampler
  "$B/tcpms-bench" mqtt-storm --target "$ADDR" -n "$n" --ready-file "$work/ready" \
    --max-pending "$MAX_PENDING" --connect-timeout 30 --reply-timeout 30 --retry-min "$RETRY_MIN" \
    --retry-max "$RETRY_MAX" --storm-max-pending "$STORM_PENDING" --storm-timeout "$STORM_TIMEOUT" --max-time $(( STORM_TIMEOUT + 900 )) \
    --json --no-progress >"$out" 2>"$out.log" &
  local bench_pid=$!
  # Every client subscribed: the loops' ready files add up to n.
  local ready=0
  for _ in $(seq 9000); do
    ready=$(cat "$work"/ready.* 2>/dev/null | awk '{s += $1} END {print s + 0}') || true  # none yet
    [ "$ready" -ge "$n" ] && break
    kill -0 "$bench_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ready" -lt "$n" ]; then
    echo "storm.sh: $name: only $ready of $n clients subscribed; see $out.log" >&2
    tail -20 "$out.log" >&2
    OK=0
    crash "$pid" wait
    wait "$bench_pid" 2>/dev/null || true
    stop_sampler
    return
  fi
  sleep 1  # one more memory sample with everyone held
  # The crash and the restart: the new server starts at once (Mosquitto once the killed one
  # is gone, see crash); the restart time is until its first listener is up (the clients'
  # refused attempts fall in it). tcpms is up when its log says so: until then `ss` may still
  # show the dying process's listener.
  local t0 t1 tgone restarted_log="$work/$name-restarted.$RANDOM.log"
  t0=$(date +%s%N)
  if [ "$name" = tcpms ]; then crash "$pid"; else crash "$pid" wait; fi
  tgone=$(date +%s%N)
  launch "$name" "$port" "$workers" "$restarted_log"
  echo "storm $PID" >"$work/watch"
  until if [ "$name" = tcpms ]; then grep -q 'listening on' "$restarted_log"; else listening "$port"; fi; do
    kill -0 "$PID" 2>/dev/null || { echo "storm.sh: $name did not restart" >&2; cat "$restarted_log" >&2; OK=0; kill -TERM "$bench_pid"; break; }
    sleep 0.005
  done
  t1=$(date +%s%N)
  wait "$pid" 2>/dev/null || true  # reap the killed one (tcpms: not waited for above)
  wait "$bench_pid" || true
  stop_sampler
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  [ -z "$KEEP_LOGS" ] || { mkdir -p "$KEEP_LOGS"; cp "$work"/*.log "$work"/*.json* "$KEEP_LOGS"/ 2>/dev/null || true; }
  [ -s "$out" ] || { echo "storm.sh: $name: tcpms-bench produced no result" >&2; tail -20 "$out.log" >&2; OK=0; return; }
  /usr/bin/python3 - "$out" "$name" "$n" "$workers" "$(( (tgone - t0) / 1000000 ))" "$(( (t1 - tgone) / 1000000 ))" "$(peak_mib hold)" "$(peak_mib storm)" <<'PY'
import json, sys
path, name, n, workers, exit_ms, restart_ms, hold_mib, storm_mib = sys.argv[1:]
d = json.load(open(path))
c, f = d["counters"], d["failures"]
causes = ", ".join(f"{k[len('attempt_fail.'):]} {v:,}" for k, v in sorted(c.items()) if k.startswith("attempt_fail.")) or "none"
drops = ", ".join(f"{k[len('drop.'):]} {v:,}" for k, v in sorted(c.items()) if k.startswith("drop.")) or "none"
lost = ", ".join(f"{k} {v:,}" for k, v in sorted(f.items())) or "0"
o = d["latency"].get("outage", {})
def s(ns): return f"{ns / 1e9:.2f} s"
back = c.get("back", 0)
all_back = f"{c['time_to_all_back_ms'] / 1000:.2f} s" if back == int(n) and "time_to_all_back_ms" in c else "not all back"
procs = f"{workers} process{'es' if int(workers) > 1 else ''}"
print(f"| {name} ({procs}) | {int(n):,} | {back:,} | {all_back} | {s(o.get('p50_ns', 0))} / {s(o.get('p99_ns', 0))} / {s(o.get('max_ns', 0))} "
      f"| {int(exit_ms):,} ms / {int(restart_ms):,} ms | {c.get('storm_attempts', 0):,} | {causes} | {lost} | {drops} | {hold_mib} MiB | {storm_mib} MiB |")
PY
  [ "$(json "$out" "int(d['counters'].get('back', 0) == $n and d['failure_total'] == 0)")" = 1 ] || OK=0
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit (with uncommitted changes)"
echo "## Reconnect storm after kill -9 ($(date -u +%Y-%m-%d), commit $commit, $(nproc) cores shared by server and bench)"
echo
echo "load before the runs: $(cut -d' ' -f1-3 /proc/loadavg); reconnect attempts in flight per bench process: $([ "$STORM_PENDING" = 0 ] && echo "no cap" || echo "$STORM_PENDING")"
echo
echo "| server | clients | back | first drop to all back | outage per client p50 / p99 / max | killed processes gone (tcpms: not waited for) / restart to first listener | reconnect attempts | failed attempts by cause | failures (clients) | drops by cause | peak RSS holding | peak RSS restarted, in the storm |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
storm tcpms "$N" "$processes"
if [ "$M" != 0 ]; then
  m_processes=$(( (M + PER_PROCESS - 1) / PER_PROCESS ))
  [ "$M" = "$N" ] && [ "$m_processes" = "$processes" ] || storm tcpms "$M" "$m_processes"
  storm mosquitto "$M" 1
fi
echo
echo "load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$OK" = 1 ] || { echo "storm.sh: FAILED: not every client came back (see the table)" >&2; exit 1; }
