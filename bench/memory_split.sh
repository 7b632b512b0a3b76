#!/usr/bin/env bash
# bench/memory_split.sh [N] [P]   (defaults: 100,000 clients, 8 worker processes)
#
# Where a held MQTT client's server memory goes. Starts tcpms-server --protocol mqtt
# --processes P --threads 1 (admin API on, as bench/scale.sh runs it), connects N clients with
# tcpms-bench mqtt-conn (CONNECT + SUBSCRIBE to a topic of their own, then held), and prints:
# the bench's server bytes per client (RSS growth over all processes / N, the figure issue 15's
# goal is about), then the RSS of every server process split by kind of mapping, before and
# while the clients are held (malloc arenas, large mmaps such as RemoteInterest tables, thread
# stacks), and what malloc_trim(0) would give back in worker 1 (gdb, if installed).
# Memory figures only: CPU per client needs a quiet machine (bench/workers_per_client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
P=${2:-8}
B=${BUILD_DIR:-build/release}/bin
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
source bench/lib.sh
trap cleanup_all EXIT

split() {  # split PID... -> RSS by kind of mapping, summed over the processes
  /usr/bin/python3 - "$@" <<'PY'
import collections, re, sys
def kind(name, kb, perms):
    if name == "[heap]": return "main arena ([heap])"
    if name.startswith("/") or name.startswith("["): return "files, stacks of main, vdso"
    if perms.startswith("---"): return "reserved"
    if kb in (8192, 8188): return "thread stacks"
    return "anonymous mmaps (other arenas, large allocations)"
rss, big = collections.Counter(), collections.Counter()
for pid in sys.argv[1:]:
    try: lines = open(f"/proc/{pid}/smaps").read().splitlines()
    except OSError: continue
    cur = None
    for ln in lines:
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", ln)
        if m:
            kb = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024
            cur = (kind(m.group(4).strip(), kb, m.group(3)), kb)
        elif ln.startswith("Rss:") and cur:
            v = int(ln.split()[1]); rss[cur[0]] += v
            if cur[0].startswith("anonymous") and v: big[cur[1]] += v
for k, v in rss.most_common(): print(f"  {k:50s} {v / 1024:8.1f} MiB")
print("  largest anonymous mappings (size KiB: RSS KiB summed):",
      ", ".join(f"{s}: {v}" for s, v in big.most_common(6)))
PY
}

"$B/tcpms-doctor" --connections "$N" --role both --apply >"$work/doctor.txt" 2>&1 || true
"$B/tcpms-server" --protocol mqtt --listen 127.0.0.1:0 --processes "$P" --threads 1 \
  --admin-listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
server=$!
PIDS+=("$server")
addr=$(wait_listening "$work/server.log" "$server")
wait_workers "$work/server.log" "$P"
sleep 3  # the workers' mesh links come up
split_server() {  # the supervisor and its workers
  local pids
  mapfile -t pids < <(echo "$server"; pgrep -P "$server" || true)
  split "${pids[@]}"
}
echo "## $N MQTT clients over $P worker processes ($(date -u +%F), commit $(git rev-parse --short HEAD))"
echo "before the clients:"; split_server
"$B/tcpms-bench" mqtt-conn --target "$addr" -n "$N" --server-pid "$server" --connect-timeout 60 \
  --reply-timeout 60 --hold 30 --json --no-progress >"$work/conn.json" 2>"$work/conn.log" &
bench_pid=$!
port=${addr##*:}
for _ in $(seq 600); do  # held: (nearly) all connected, or the bench is done
  [ "$(ss -Htn state established "( sport = :$port )" | wc -l)" -ge $((N * 97 / 100)) ] && break
  kill -0 "$bench_pid" 2>/dev/null || break
  sleep 0.5
done
sleep 5
echo "held:"; split_server
w1=$(pgrep -P "$server" | sed -n 2p || true)
if [ -n "$w1" ] && command -v gdb >/dev/null; then
  before=$(awk '/VmRSS/ {print $2}' "/proc/$w1/status")
  gdb -p "$w1" -batch -ex "call (int)malloc_trim(0)" >/dev/null 2>&1 || true
  after=$(awk '/VmRSS/ {print $2}' "/proc/$w1/status")
  echo "worker pid $w1: VmRSS $before KiB, after malloc_trim(0) $after KiB"
fi
wait "$bench_pid" || true
/usr/bin/python3 - "$work/conn.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c, cost = d.get("counters", {}), d.get("server_cost", {})
mem = cost.get("rss_bytes_per_connection")
pss = cost.get("pss_bytes_per_connection")
print(f"subscribed {c.get('subscribed', 0):,}; failures {d.get('failures')}; "
      f"server bytes per client (RSS growth / N) {mem if mem is None else round(mem)}, "
      f"each shared page once (PSS growth / N) {pss if pss is None else round(pss)}")
PY
