#!/usr/bin/env bash
# What persistence costs (docs/persistence.md), side by side in one run, on a Release build.
# Prints a Markdown report.
#
#   bench/persistence.sh [BUILD_DIR]      (default build/release)
#
#   1. QoS 1 fan-out to persistent subscribers: SUBS subscribers (CleanSession 0) on one
#      topic, one publisher at RATE QoS 1 publishes/s, 64-byte payloads, DURATION s
#      (tcpms-bench mqtt-fanout --qos 1 --persistent-sessions). Brokers, each started fresh on a
#      fresh directory: tcpms without persistence, with persistence.sync = 50ms, with
#      every-message (the default, the strict mode), Mosquitto with persistence false (its
#      in-memory QoS 1: the goal says strict must cost less CPU per message than this) and
#      with persistence true. Server CPU per delivery over the publish phase (from /proc),
#      delivery latency from the intended send time, losses.
#   2. Disk bytes per queued message: QSUBS persistent subscribers go offline, QMSGS QoS 1
#      messages of 64 bytes are published to them; the store's size (after a clean stop) over
#      the messages queued (QSUBS x QMSGS), tcpms beside Mosquitto's mosquitto.db.
#   3. Restart with SESSIONS persistent sessions, one subscription each (made in waves of
#      WAVE clients by tcpms-bench mqtt-conn --persistent-sessions): the server is killed
#      with SIGKILL and started again on its store; the time from exec to its "listening on"
#      line (everything is back before it accepts), and its RSS then. Goal: under 30 s for
#      1,000,000.
#
# Full size (the lead's quiet-machine run):
#   bench/persistence.sh
# Small (proves the script; seconds):
#   SUBS=20 RATE=200 DURATION=3 QSUBS=5 QMSGS=2000 SESSIONS=20000 bench/persistence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
THREADS=${THREADS:-2}
SUBS=${SUBS:-100}
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
QSUBS=${QSUBS:-10}
QMSGS=${QMSGS:-20000}
SESSIONS=${SESSIONS:-1000000}
WAVE=${WAVE:-19000}
for b in tcpms-server tcpms-bench; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: build the release preset first" >&2; exit 1; }
done
[ -x "$MOSQUITTO" ] || { echo "missing $MOSQUITTO (apt-get install mosquitto)" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap cleanup_all EXIT

free_port() { /usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# start NAME DIR -> sets PID and ADDR. NAME: tcpms-off, tcpms-50ms, tcpms-every-message,
# mosquitto (persistence false), mosquitto-persist (persistence true, its db in DIR).
start() {
  local name=$1 dir=$2 log="$work/$1.$RANDOM.log"
  : >"$log"
  mkdir -p "$dir"
  if [[ $name == tcpms* ]]; then
    local args=(--protocol mqtt --listen 127.0.0.1:0 --threads "$THREADS" --no-admin --sys-interval 0)
    case $name in
      tcpms-50ms) args+=(--persistence-dir "$dir" --persistence-sync 50ms) ;;
      tcpms-every-message) args+=(--persistence-dir "$dir") ;;
    esac
    "$B/tcpms-server" "${args[@]}" >"$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    ADDR=$(wait_listening "$log" "$PID")
    return
  fi
  local port conf="$dir/mosquitto.conf"
  port=$(free_port)
  # Run as root, Mosquitto drops to its own user: it must be able to write its database here.
  if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chmod o+x "$work"; chown mosquitto "$dir"; fi
  cat >"$conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages 20
set_tcp_nodelay true
persistence $([ "$name" = mosquitto-persist ] && echo true || echo false)
persistence_location $dir/
log_dest stderr
log_type error
log_type warning
EOF
  run_mosquitto "$conf" "$log" "$port"
}

bench() { local out=$1; shift; "$B/tcpms-bench" "$@" --json --no-progress >"$out" 2>"$out.log" || true; }

echo "## Persistence: what it costs ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores shared by broker and bench, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "### QoS 1 to $SUBS persistent subscribers, one publisher at $RATE/s, $DURATION s"
echo
echo "| broker | publishes/s | deliveries/s | server CPU us per delivery | per publish ($SUBS deliveries) | p50 | p99 | p99.9 | lost | failures |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for s in tcpms-off tcpms-50ms tcpms-every-message mosquitto mosquitto-persist; do
  start "$s" "$work/d-$s"
  out="$work/fanout-$s.json"
  bench "$out" mqtt-fanout --target "$ADDR" --qos 1 --persistent-sessions --subscribers "$SUBS" \
    --publishers 1 --publish-rate "$RATE" --duration "$DURATION" --server-pid "$PID"
  stop "$PID"
  /usr/bin/python3 - "$out" "$s" "$SUBS" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); name, subs = sys.argv[2], int(sys.argv[3])
c, lat = d["counters"], d["latency"]
def t(ns):
    return f"{ns/1e3:.0f} us" if ns < 1e6 else f"{ns/1e6:.1f} ms" if ns < 1e9 else f"{ns/1e9:.2f} s"
fails = ", ".join(f"{k} {v}" for k, v in sorted(d.get("failures", {}).items())) or "0"
cpu = c.get("phase_server_cpu_ns_per_delivery", 0) / 1e3
dl = lat.get("delivery", {})
print(f"| {name} | {c.get('publishes_per_s', 0):,} | {c.get('deliveries_per_s', 0):,} | {cpu:.2f} | "
      f"{cpu * subs:.0f} | " + " | ".join(t(dl.get(k, 0)) for k in ("p50_ns", "p99_ns", "p99.9_ns"))
      + f" | {c.get('lost', 0):,} of {c.get('expected_deliveries', 0):,} | {fails} |")
EOF
done
echo
echo "\`tcpms-bench mqtt-fanout --qos 1 --persistent-sessions --subscribers $SUBS --publishers 1 --publish-rate $RATE --duration $DURATION --server-pid PID\`."
echo "tcpms: \`--threads $THREADS\`, \`--persistence-dir\` a fresh directory, \`--persistence-sync\` as named"
echo "(every-message: each PUBACK waits until the message is on disk for every subscriber)."
echo "Mosquitto $("$MOSQUITTO" -h 2>&1 | head -1 | awk '{print $3}') (single-threaded), \`max_queued_messages 1000000\`;"
echo "with \`persistence true\` it writes its database only at autosave and shutdown, so a crash loses"
echo "what came since (mosquitto#3159): its row measures that, not a write per message."
echo

# --- 2. disk bytes per queued message -------------------------------------------------------
# queue ADDR -> QSUBS persistent subscribers on q/t go offline, then QMSGS QoS 1 publishes.
queue() {
  /usr/bin/python3 - "$1" "$QSUBS" "$QMSGS" <<'EOF'
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1); subs, msgs = int(sys.argv[2]), int(sys.argv[3])
def s16(b): return struct.pack("!H", len(b)) + b
def frame(b0, body):
    n, v = len(body), bytearray()
    while True:
        d, n = n % 128, n // 128
        v.append(d | (0x80 if n else 0))
        if not n: break
    return bytes([b0]) + bytes(v) + body
def connect(cid, clean):
    s = socket.create_connection((host, int(port)))
    s.sendall(frame(0x10, s16(b"MQTT") + bytes([4, 2 if clean else 0]) + struct.pack("!H", 600) + s16(cid.encode())))
    s.recv(4)
    return s
def recv_n(s, n):
    b = b""
    while len(b) < n: b += s.recv(n - len(b))
    return b
for i in range(subs):
    s = connect(f"q{i}", False)
    s.sendall(frame(0x82, struct.pack("!H", 1) + s16(b"q/t") + b"\x01"))
    recv_n(s, 5)
    s.sendall(b"\xe0\x00"); s.close()
p = connect("qpub", True)
payload = b"x" * 64
window = 100
for k in range(msgs):
    pid = k % 65535 + 1
    p.sendall(frame(0x32, s16(b"q/t") + struct.pack("!H", pid) + payload))
    if k >= window: recv_n(p, 4)
for _ in range(min(window, msgs)): recv_n(p, 4)
p.sendall(b"\xe0\x00"); p.close()
EOF
}
echo "### Disk bytes per queued message: $QSUBS offline persistent subscribers, $QMSGS QoS 1 messages of 64 bytes each"
echo
echo "| broker | queued messages | bytes on disk | bytes per queued message |"
echo "|---|---|---|---|"
for s in tcpms-every-message mosquitto-persist; do
  dir="$work/q-$s"
  start "$s" "$dir"
  queue "$ADDR"
  stop "$PID"   # a clean stop: tcpms checkpoints its WAL, Mosquitto saves its database
  bytes=$(du -sb --exclude=mosquitto.conf --exclude='*.log' "$dir" | cut -f1)
  n=$((QSUBS * QMSGS))
  echo "| $s | $n | $bytes | $(/usr/bin/python3 -c "print(f'{$bytes/$n:.1f}')") |"
done
echo
echo "tcpms stores a message's body once per loop and a small ref per subscriber"
echo "(docs/persistence.md, \"Disk layout\"), so bytes per queued message fall as subscribers share it."
echo

# --- 3. restart with SESSIONS sessions ------------------------------------------------------
echo "### Restart with $SESSIONS persistent sessions, one subscription each"
echo
dir="$work/restart"
start tcpms-every-message "$dir"
made=0
t0=$(date +%s)
while [ "$made" -lt "$SESSIONS" ]; do
  n=$(( SESSIONS - made < WAVE ? SESSIONS - made : WAVE ))
  bench "$work/wave.json" mqtt-conn --target "$ADDR" -n "$n" --persistent-sessions --hold 0
  got=$(json "$work/wave.json" "d['counters'].get('subscribed', 0)")
  [ "$got" -gt 0 ] || { echo "a wave subscribed nobody: $(tail -3 "$work/wave.json.log")" >&2; exit 1; }
  made=$(( made + got ))
done
made_s=$(( $(date +%s) - t0 ))
sleep 1   # let the last commits land (every-message: they are durable as they are acknowledged)
kill -KILL "$PID"; wait "$PID" 2>/dev/null || true
store_bytes=$(du -sb "$dir" | cut -f1)
log="$work/restart.log"
t_start=$(date +%s.%N)
"$B/tcpms-server" --protocol mqtt --listen 127.0.0.1:0 --threads "$THREADS" --no-admin --sys-interval 0 \
  --persistence-dir "$dir" >"$log" 2>&1 &
PID=$!
PIDS+=("$PID")
wait_listening "$log" "$PID" >/dev/null
t_end=$(date +%s.%N)
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
recovered=$(grep -o 'recovered [0-9]* sessions' "$log" | awk '{print $2}')
stop "$PID"
echo "| sessions made | made in | store on disk | recovered | exec to listening | RSS after recovery |"
echo "|---|---|---|---|---|---|"
echo "| $made | ${made_s} s | $(( store_bytes / 1048576 )) MiB | $recovered | $(/usr/bin/python3 -c "print(f'{$t_end - $t_start:.2f} s')") | $(( rss_kb / 1024 )) MiB |"
echo
echo "Made with \`tcpms-bench mqtt-conn -n $WAVE --persistent-sessions --hold 0\` in waves against"
echo "\`tcpms-server --threads $THREADS --persistence-dir DIR\` (every-message), then \`kill -9\` and a restart on"
echo "DIR: its log line \"recovered N sessions ... in X s\" is the store's part; the rest is the broker"
echo "rebuilding its registry and topic trees."
grep -o 'recovered .* in [0-9.]* s' "$log" | sed 's/^/    /'
