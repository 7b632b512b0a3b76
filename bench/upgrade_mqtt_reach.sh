#!/usr/bin/env bash
# bench/upgrade_mqtt_reach.sh N: what `PROTOCOL=mqtt bench/upgrade.sh N` runs when N is more than
# one Python driver process holds (N > 19,500), or with DRIVER=bench: N MQTT 3.1.1 clients of
# tcpms-bench mqtt-reach over as many bench processes as their descriptors need, each
# subscribed to a topic of its own at QoS 1, against tcpms-server with worker processes
# (PROCESSES, default N / PER_PROCESS rounded up and at least 2, one loop each, as
# bench/scale.sh --mqtt).
# mqtt-reach's stream stage (docs/bench.md) sends QoS 1 messages round robin to every client
# (STREAM_RATE per second over the run, at most INFLIGHT unacknowledged per publisher) for
# 2 s, during `tcpms-server --upgrade`, and 2 s after it returned; then every message the
# broker acknowledged must arrive. Its publish and push stages then reach every client once
# more, through the new server (and its admin API for PUSHES of them).
#
# Prints the bench's figures, the peak memory of both server generations during the run
# (summed VmRSS and Pss of every process, bench/server_memory.py), and exits non-zero unless
# nobody was disconnected, nothing acknowledged was lost, `--upgrade` returned 0, and every
# client got its published and pushed message. The bench never reconnects, so reconnects are
# 0 by construction and a disconnect cannot hide.
#
# Environment: BUILD_DIR (build/release), PROCESSES, PER_PROCESS (19000), STREAM_RATE (5000;
# 0: as fast as INFLIGHT allows), INFLIGHT (100), PUSHES (1000), MAX_LOGINS (50000), DRAIN (30 s),
# KEEP_JSON (copy the bench's JSON there), SERVER_LOG_OUT (keep the server's log), SERVER_ARGS
# (more tcpms-server flags, e.g. "--log-level debug"; the successor gets the same command line),
# PERSISTENT=1 (every client a persistent session, the server with a store in the work
# directory, persistence.sync PERSISTENCE_SYNC, default every-message: the store is handed
# over too), TRANSPORT (tcp; tls, websocket or websocket+tls: every client over a listener of
# that kind, TLS 1.3 with a certificate made for the run; those connections move with their
# record keys and framing, handover version 6).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: bench/upgrade_mqtt_reach.sh N}
B=${BUILD_DIR:-build/release}/bin
STREAM_RATE=${STREAM_RATE:-5000}
INFLIGHT=${INFLIGHT:-100}
PUSHES=${PUSHES:-1000}
MAX_LOGINS=${MAX_LOGINS:-50000}
DRAIN=${DRAIN:-30}
work=$(mktemp -d)
persist_server=() persist_bench=()
if [ "${PERSISTENT:-0}" = 1 ]; then
  persist_server=(--persistence-dir "$work/store" --persistence-sync "${PERSISTENCE_SYNC:-every-message}")
  persist_bench=(--persistent)
fi
source bench/lib.sh
transport=${TRANSPORT:-tcp}
transport_server=() transport_bench=()
case $transport in
  tcp) ;;
  tls|websocket|websocket+tls)
    {
      printf '[[listeners]]\nbind = "127.0.0.1:0"\n'
      case $transport in websocket*) printf 'websocket = true\n' ;; esac
      case $transport in
        *tls)
          make_certificate "$work"
          printf 'tls.cert_file = "%s"\ntls.key_file = "%s"\n' "$work/server.pem" "$work/server.key"
          transport_bench+=(--tls --tls-ca-file "$work/ca.pem" --tls-version 1.3) ;;
      esac
    } >"$work/listeners.toml"
    case $transport in websocket*) transport_bench+=(--websocket) ;; esac
    transport_server=(--config "$work/listeners.toml") ;;
  *) echo "TRANSPORT is tcp, tls, websocket or websocket+tls, not $transport" >&2; exit 2 ;;
esac
trap '[ -z "${SERVER_LOG_OUT:-}" ] || cp "$work/server.log" "$SERVER_LOG_OUT" 2>/dev/null; cleanup_all' EXIT
for b in tcpms-server tcpms-bench tcpms-doctor; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build it first" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
# At least 2: the supervisor hands its reserved admin port (127.0.0.1:0 at start) to its
# successor; a single process's successor would bind a new one, and the push stage after the
# upgrade would not find it.
processes=${PROCESSES:-$(server_processes "$N")}
[ "$processes" -ge 2 ] || processes=2
# Both generations hold the clients' user-space state for a while.
check_memory "$N" "$MQTT_BYTES_PER_PAIR"
doctor_apply "$N"
start_mqtt_workers "$processes" --sys-interval 0 --pid-file "$work/tcpms.pid" "${persist_server[@]}" \
  "${transport_server[@]}" ${SERVER_ARGS:-}
if [ "$transport" != tcp ]; then  # the clients' listener, not the plain one beside it
  ADDR=$(grep -o "127.0.0.1:[0-9]* ($transport)" "$work/server.log" | head -1 | cut -d' ' -f1)
  [ -n "$ADDR" ] || { echo "no $transport listener in the start-up line" >&2; exit 1; }
fi
echo "upgrade: tcpms-server pid $SERVER, $processes worker processes on $ADDR" >&2
for _ in $(seq 100); do [ -s "$work/tcpms.pid" ] && break; sleep 0.1; done

/usr/bin/python3 bench/server_memory.py "$work/memory.json" "$work/tcpms.pid" "$SERVER" &
sampler=$!
PIDS+=("$sampler")
bin=$(cd "$B" && pwd)
# The start time beside the command, so the old supervisor's exit can be timed from it.
upgrade_cmd="date +%s.%N >$work/upgrade.start; exec $bin/tcpms-server --upgrade --pid-file $work/tcpms.pid"
out="$work/reach.json"
"$B/tcpms-bench" mqtt-reach --target "$ADDR" -n "$N" --qos 1 --pushes "$PUSHES" --admin "$ADMIN" \
  --stream-during "$upgrade_cmd" --stream-after 2 --stream-tail 2 --stream-rate "$STREAM_RATE" \
  --publishers 1 --inflight "$INFLIGHT" --drain "$DRAIN" "${REACH_FLEET_ARGS[@]}" \
  --max-logins "$MAX_LOGINS" --sync-timeout 300 --max-time 1800 "${persist_bench[@]}" \
  "${transport_bench[@]}" --json >"$out" 2>"$work/bench.log" || true
kill -TERM "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
grep -E "^(tcpms-bench|layout)" "$work/bench.log" >&2 || true
grep -E "SIGUSR2|handover|upgrade|store:" "$work/server.log" | tail -20 >&2 || true
[ -z "${KEEP_JSON:-}" ] || cp "$out" "$KEEP_JSON"
[ -s "$out" ] || { echo "tcpms-bench produced no result:" >&2; tail -30 "$work/bench.log" >&2; exit 1; }
# The successor is not our child: stop it by its pid file.
new_pid=$(cat "$work/tcpms.pid" 2>/dev/null || true)
if [ -n "$new_pid" ] && [ "$new_pid" != "$SERVER" ]; then kill -TERM "$new_pid" 2>/dev/null || true; fi

/usr/bin/python3 bench/upgrade_summary.py workers "$out" "$work/memory.json" "$work/upgrade.start" "$N" "$PUSHES" "$processes"
