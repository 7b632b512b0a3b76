# Shared helpers for bench/*.sh. Source it; expects $B (bin dir) and $work (temp dir).

PIDS=()
cleanup_all() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}

# wait_listening LOG PID -> echoes HOST:PORT once LOG says "listening on"
wait_listening() {
  local log=$1 pid=$2 addr
  for _ in $(seq 300); do
    addr=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -1 | cut -d' ' -f3 || true)
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

# wait_workers LOG P: waits (up to 10 s) until P worker processes have logged "listening on",
# so that every worker has bound before connections arrive; past 10 s it goes on (a server
# that announces its workers in fewer lines).
wait_workers() {
  local log=$1 want=$2
  for _ in $(seq 100); do
    [ "$(grep -c 'listening on' "$log" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.1
  done
}

# admin_address LOG -> HOST:PORT of the admin API from the first start-up line that names it
# ("..., admin on 127.0.0.1:8080; ...")
admin_address() { grep -o 'admin on [^;, ]*' "$1" 2>/dev/null | head -1 | cut -d' ' -f3 || true; }

# make_certificate DIR -> DIR/ca.pem, DIR/server.pem, DIR/server.key: P-256 ECDSA, a CA and a
# server certificate it signed for localhost and 127.0.0.1, valid two days.
make_certificate() {
  local d=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
    -out "$d/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/server.key" \
    -out "$d/server.csr" -subj /CN=localhost 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/server.pem" -days 2 -extfile "$d/ext.cnf" 2>/dev/null
}

# free_port -> a loopback port nobody listens on now (for brokers that cannot bind port 0)
free_port() { /usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

# bench OUT ARGS... -> tcpms-bench with --json into OUT, its log beside it (exit 1 only means
# some operations failed, which the result says)
bench() { local out=$1; shift; "$B/tcpms-bench" "$@" --json --no-progress >"$out" 2>"$out.log" || true; }

# run_mosquitto CONF LOG PORT -> starts $MOSQUITTO on CONF (which listens on 127.0.0.1:PORT),
# sets PID and ADDR once the port listens; exits the script if it does not start.
run_mosquitto() {
  local conf=$1 log=$2 port=$3
  # Same descriptor limit as tcpms and the bench get: the hard limit (20000 here).
  (ulimit -n "$(ulimit -Hn)"; exec "$MOSQUITTO" -c "$conf") >"$log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    if ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port "; then ADDR=127.0.0.1:$port; return 0; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "mosquitto did not start" >&2; cat "$log" >&2; exit 1
}

# json FILE EXPR: evaluates a Python expression over the parsed JSON `d`.
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# Refuses a run that would not fit in memory: N connection pairs at BYTES_PER_PAIR each.
check_memory() {
  local n=$1 per_pair=$2 avail_kb need_kb
  avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  need_kb=$(( n * per_pair / 1024 + 2 * 1024 * 1024 ))   # + 2 GiB of headroom
  if [ "$need_kb" -gt "$avail_kb" ]; then
    echo "refusing: $n connections need about $(( need_kb / 1024 )) MiB (kernel ~$per_pair B per loopback pair + 2 GiB headroom) but MemAvailable is $(( avail_kb / 1024 )) MiB; try a smaller N" >&2
    exit 2
  fi
}

# write_section FILE KEY BODY: replaces the section marked <!-- KEY --> ... <!-- /KEY --> in the
# Markdown FILE with BODY (or appends it), so each script run updates only its own figures.
write_section() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import re, sys
path, key, body = sys.argv[1:4]
section = f"<!-- {key} -->\n{body.rstrip()}\n<!-- /{key} -->\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Scale runs\n\nWritten by bench/scale.sh and bench/latency.sh; each section is replaced by its next run.\n\n"
pat = re.compile(rf"<!-- {re.escape(key)} -->.*?<!-- /{re.escape(key)} -->\n", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text + "\n" + section
open(path, "w").write(text)
PY
}

# --- a fleet of MQTT clients over server worker processes (scale.sh --mqtt, upgrade.sh) -------

# server_processes N -> worker processes for N clients: PER_PROCESS (19,000) planned per worker,
# below each one's cap (RLIMIT_NOFILE minus a 256 reserve = 19,744 here) because SO_REUSEPORT
# spreads connections by hash, not evenly.
server_processes() { local per=${PER_PROCESS:-19000}; echo $(( ($1 + per - 1) / per )); }

# Bytes per MQTT client for check_memory: ~9.9 KB of kernel slab per loopback pair
# (docs/benchmarks.md), plus user space on both sides (the server's session and subscription,
# the bench's state).
MQTT_BYTES_PER_PAIR=14336

# doctor_apply N: the sysctls tcpms-doctor recommends for N connections, both ends on this box.
doctor_apply() {
  echo "$(basename "$0"): tcpms-doctor --apply for $1 connections (sysctls only)" >&2
  "$B/tcpms-doctor" --connections "$1" --role both --apply >"$work/doctor.txt" 2>&1 || true
}

# start_mqtt_workers P [FLAG...]: tcpms-server (MQTT) as P worker processes of one loop each,
# the admin API on a port the kernel picks (for mqtt-reach's pushes), logging to
# $work/server.log; once every worker listens, sets SERVER (its pid), ADDR and ADMIN.
start_mqtt_workers() {
  local p=$1; shift
  "$B/tcpms-server" --protocol mqtt --listen 127.0.0.1:0 --processes "$p" --threads 1 \
    --admin-listen 127.0.0.1:0 "$@" >"$work/server.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  ADDR=$(wait_listening "$work/server.log" "$SERVER")
  wait_workers "$work/server.log" "$p"  # every worker bound before connections arrive
  ADMIN=$(admin_address "$work/server.log")
  [ -n "$ADMIN" ] || { echo "no 'admin on HOST:PORT' in the start-up line" >&2; cat "$work/server.log" >&2; exit 1; }
}

# mqtt-reach flags for a large fleet: connects in flight, and how long a connect or a reply
# may take on a loaded box.
REACH_FLEET_ARGS=(--max-pending 2000 --connect-timeout 30 --reply-timeout 60)
