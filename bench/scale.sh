#!/usr/bin/env bash
# bench/scale.sh [N]         (default 1,000,000): N concurrent echo connections on this box.
# bench/scale.sh --mqtt [N]  (default 1,000,000): N MQTT clients, each subscribed to a topic of
#                            its own; one message published to every one of them, and one pushed
#                            through the admin API by client id to a random PUSHES (10,000) of
#                            them; each must arrive exactly once (tcpms-bench mqtt-reach).
#
# Applies the sysctls tcpms-doctor recommends, starts tcpms-server with enough worker
# processes (RLIMIT_NOFILE is per process), drives tcpms-bench with enough worker processes and
# 127.0.0.0/8 source addresses, and writes the figures into docs/scale.md (override with
# SCALE_MD=path, or SCALE_MD= to skip) plus an HTML report beside it. Refuses if N cannot fit in
# memory. Cleans up everything it started. Exits non-zero unless every connection (echo: pinged;
# MQTT: subscribed, its message delivered, its push delivered) succeeded and the server drained.
#
# Environment: BUILD_DIR (build/release), SCALE_MD (docs/scale.md), REPORT, PER_PROCESS (19000
# clients planned per server worker), SERVER_PROCESSES (default: N / PER_PROCESS rounded up);
# SERVER_ARGS (more tcpms-server flags, e.g. "--mqtt-suback-waits-for-peers=false"); SERVER_LOG_OUT;
# echo: HOLD (10 s); MQTT: PUSHES (10000), QOS (0), PUBLISH_RATE (0: as fast as flow allows),
# MAX_LOGINS (50000 clients between connect and SUBACK at once; 0: all at once, open loop).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=echo
if [ "${1:-}" = --mqtt ]; then MODE=mqtt; shift; fi
N=${1:-1000000}
B=${BUILD_DIR:-build/release}/bin
HOLD=${HOLD:-10}
PUSHES=${PUSHES:-10000}
QOS=${QOS:-0}
PUBLISH_RATE=${PUBLISH_RATE:-0}
MAX_LOGINS=${MAX_LOGINS:-50000}
SCALE_MD=${SCALE_MD-docs/scale.md}
report_name=$([ "$MODE" = mqtt ] && echo "-mqtt-report.html" || echo "-report.html")
REPORT=${REPORT-$( [ -z "$SCALE_MD" ] || echo "${SCALE_MD%.md}$report_name" )}  # beside SCALE_MD
work=$(mktemp -d)
source bench/lib.sh
processes=${SERVER_PROCESSES:-$(server_processes "$N")}
# SERVER_LOG_OUT=F keeps the server's log (its "client connected/disconnected" lines name the
# clients the bench reports lost).
trap '[ -z "${SERVER_LOG_OUT:-}" ] || cp "$work/server.log" "$SERVER_LOG_OUT" 2>/dev/null; cleanup_all' EXIT

for b in tcpms-server tcpms-bench tcpms-doctor; do
  [ -x "$B/$b" ] || { echo "missing $B/$b: run 'cmake --preset release && cmake --build --preset release'" >&2; exit 1; }
done
# Measured: ~9.9 KB of kernel slab per loopback pair (docs/benchmarks.md).
check_memory "$N" "$([ "$MODE" = mqtt ] && echo "$MQTT_BYTES_PER_PAIR" || echo 10240)"
doctor_apply "$N"

if [ "$MODE" = mqtt ]; then
  # shellcheck disable=SC2086  # SERVER_ARGS: flags, split on purpose
  start_mqtt_workers "$processes" ${SERVER_ARGS:-}
  server=$SERVER addr=$ADDR
else
  "$B/tcpms-server" --protocol echo --listen 127.0.0.1:0 --processes "$processes" --threads 1 \
    --no-admin >"$work/server.log" 2>&1 &
  server=$!
  PIDS+=("$server")
  addr=$(wait_listening "$work/server.log" "$server")
  wait_workers "$work/server.log" "$processes"  # every worker bound before connections arrive
fi
echo "scale: tcpms-server pid $server, $processes worker processes on $addr" >&2
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit (with uncommitted changes)"

if [ "$MODE" = mqtt ]; then
  admin=$ADMIN
  out="$work/reach.json"
  [ -z "${SAMPLER:-}" ] || { "$SAMPLER" "$admin" "$server" "$work/samples" & PIDS+=($!); }
  "$B/tcpms-bench" mqtt-reach --target "$addr" -n "$N" --qos "$QOS" --publish-rate "$PUBLISH_RATE" \
    --pushes "$PUSHES" --admin "$admin" "${REACH_FLEET_ARGS[@]}" --max-logins "$MAX_LOGINS" \
    --sync-timeout 300 --max-time 900 --server-pid "$server" --json \
    ${REPORT:+--report "$REPORT"} >"$out" 2>"$work/bench.log" || true
  grep -E "^(tcpms-bench|layout)" "$work/bench.log" >&2 || true
  [ -z "${SAMPLER:-}" ] || cp "$work/samples" "${SAMPLES_OUT:-/tmp/samples}" 2>/dev/null || true
  [ -z "${KEEP_JSON:-}" ] || cp "$out" "$KEEP_JSON"
  [ -s "$out" ] || { echo "tcpms-bench produced no result:" >&2; tail -30 "$work/bench.log" >&2; exit 1; }
  # The server's own count of the connections it closed or refused, read once the bench is
  # done: a client the bench saw closed should show up here under its cause. Closes by the
  # peer (the bench's own goodbyes) are left out.
  server_closes=$(curl -s -m 120 "http://$admin/metrics" | awk '
    /^tcpms_connections_closed_total\{/ { match($1, /reason="[^"]*"/); r = substr($1, RSTART + 8, RLENGTH - 9)
      if (r != "peer_closed" && r != "peer_reset") s[r] += $2 }
    /^tcpms_(connections_rejected|listener_rejected|accept_errors)_total/ { n = $1; sub(/\{.*/, "", n); sub(/^tcpms_/, "", n); s[n] += $2 }
    END { for (k in s) if (s[k] > 0) printf "%s: %d, ", k, s[k] }' | sed 's/, $//')
  summary=$(/usr/bin/python3 - "$out" "$N" "$processes" "$(ulimit -n)" "${server_closes:-none}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
n, processes, nofile, server_closes = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c, lat, cost, fails = d["counters"], d["latency"], d["server_cost"], d["failures"]
def pct(name, unit=1e6, suffix="ms"):
    h = lat.get(name)
    if not h: return "n/a"
    return " / ".join(f"{h[k] / unit:.1f} {suffix}" for k in ("p50_ns", "p90_ns", "p99_ns", "max_ns"))
def per(counter, scale, suffix):
    return f"{c[counter] / scale:.1f} {suffix}" if counter in c else "n/a (no --server-pid sample)"
def fail(cause): return fails.get(cause, 0)
missing_push = fail("missing_push")
statuses = ", ".join(f"{k[len('push_http_'):]}: {v}" for k, v in sorted(c.items()) if k.startswith("push_http_")) or "none"
errors = ", ".join(f"{k}: {v}" for k, v in sorted(fails.items()) if k.startswith("push_error_")) or "none"
rows = [
    ("clients asked", n),
    ("subscribed (CONNECT + SUBSCRIBE to a topic of its own)", c.get("subscribed", 0)),
    ("failures (by cause)", f"{d['failure_total']} {fails or ''}".strip()),
    ("closed or refused by the server, by its own count (peer closes left out)", server_closes),
    ("time to subscribe all", f"{lat['time_to_subscribe']['max_ns'] / 1e9:.1f} s" if "time_to_subscribe" in lat else "n/a"),
    ("CONNECT + SUBSCRIBE per second over the ramp", f"{c.get('subscribes_per_s', 0):,}"),
    ("server CPU per CONNECT + SUBSCRIBE", per("subscribe_server_cpu_ns_per_client", 1e3, "us")),
    ("server user-space memory per client (RSS growth / clients held)",
     f"{cost['rss_bytes_per_connection']:.0f} bytes" if "rss_bytes_per_connection" in cost else "n/a"),
    ("the same, each shared page once (PSS growth / clients held)",
     f"{cost['pss_bytes_per_connection']:.0f} bytes" if "pss_bytes_per_connection" in cost else "n/a"),
    ("kernel memory per connection pair (slab growth / N)",
     f"{cost['slab_bytes_per_connection']:.0f} bytes" if "slab_bytes_per_connection" in cost else "n/a (the host slab did not grow)"),
    ("server total RSS (all workers)", f"{d['server_after']['usage']['rss_bytes'] / 2**20:.0f} MiB" if d.get("server_after") else "n/a"),
    ("published to each client's topic / delivered", f"{c.get('published', 0)} / {c.get('deliveries', 0)}"),
    ("missing / duplicated", f"{fail('missing_publish')} / {fail('duplicate_publish')}"),
    ("time to deliver all (first publish to last delivery)", f"{c.get('time_to_deliver_all_us', 0) / 1e6:.2f} s"),
    ("delivery latency p50 / p90 / p99 / max", pct("delivery")),
    ("server CPU per delivery", per("publish_server_cpu_ns_per_delivery", 1e3, "us")),
    ("admin pushes by client id: requests / delivered", f"{c.get('push_requests', 0)} / {c.get('pushes_delivered', 0)}"),
    ("admin answers by HTTP status; errors", f"{statuses}; {errors}"),
    ("pushes missing / duplicated", f"{missing_push} / {fail('duplicate_push')}"),
    ("push latency (request sent to delivery) p50 / p90 / p99 / max", pct("push_delivery")),
    ("time to push all", f"{c.get('push_time_us', 0) / 1e6:.2f} s ({d['parameters'].get('push_concurrency')} requests in flight)"),
    ("server CPU per push", per("push_server_cpu_ns_per_push", 1e3, "us")),
    ("server processes", f"{processes} x 1 loop (RLIMIT_NOFILE {nofile} each)"),
    ("bench layout", f"{d['layout']['plan']}; {d['layout']['processes']} processes"),
]
print("| figure | value |\n|---|---|")
for k, v in rows: print(f"| {k} | {v} |")
PY
)
  echo "$summary"
  if [ -n "$SCALE_MD" ]; then
    write_section "$SCALE_MD" "scale-mqtt:$N" "## $(printf "%'d" "$N") MQTT clients, each reached ($(date -u +%Y-%m-%d))

Command: \`PUSHES=$PUSHES QOS=$QOS bench/scale.sh --mqtt $N\` (commit $commit)

$summary"
  fi
  ok=$(json "$out" "int(d['counters'].get('subscribed',0) == $N and d['counters'].get('deliveries',0) == $N and d['counters'].get('pushes_delivered',0) == min($PUSHES, $N) and d['failure_total'] == 0)")
else
  out="$work/connect.json"
  "$B/tcpms-bench" connect --target "$addr" -n "$N" --hold "$HOLD" --ping --max-pending 2000 \
    --connect-timeout 30 --reply-timeout 60 --max-time 600 --server-pid "$server" --json \
    ${REPORT:+--report "$REPORT"} >"$out" 2>"$work/bench.log" || true
  grep -E "^(tcpms-bench|layout)" "$work/bench.log" >&2 || true

  [ -s "$out" ] || { echo "tcpms-bench produced no result:" >&2; tail -30 "$work/bench.log" >&2; exit 1; }
  established=$(json "$out" "d['counters'].get('established',0)")
  pings=$(json "$out" "d['counters'].get('pings_ok',0)")
  failures=$(json "$out" "d['failure_total']")
  summary=$(cat <<TXT
| figure | value |
|---|---|
| connections asked | $N |
| established | $established |
| failures (by cause) | $failures $(json "$out" "d['failures'] or ''") |
| pinged (one echo round trip each) | $pings |
| time to establish all | $(json "$out" "f\"{d['counters'].get('time_to_establish_ms',0)/1000:.1f} s\"") |
| connections per second over the ramp | $(json "$out" "f\"{d['counters'].get('connects_per_s',0):,}\"") |
| connect latency p50 / p99 / max | $(json "$out" "' / '.join(f\"{d['latency']['connect'][k]/1e6:.1f} ms\" for k in ('p50_ns','p99_ns','max_ns'))") |
| time to ping all (the pings go out at once) | $(json "$out" "f\"{d['latency']['ping']['max_ns']/1e9:.2f} s\" if 'ping' in d['latency'] else 'n/a'") |
| server processes | $processes (RLIMIT_NOFILE $(ulimit -n) each) |
| server user-space memory per connection (RSS growth / N) | $(json "$out" "f\"{d['server_cost']['rss_bytes_per_connection']:.0f} bytes\"") |
| the same, each shared page once (PSS growth / N) | $(json "$out" "f\"{d['server_cost']['pss_bytes_per_connection']:.0f} bytes\" if 'pss_bytes_per_connection' in d['server_cost'] else 'n/a'") |
| kernel memory per connection pair (slab growth / N) | $(json "$out" "f\"{d['server_cost']['slab_bytes_per_connection']:.0f} bytes\" if 'slab_bytes_per_connection' in d['server_cost'] else 'n/a (the host slab did not grow)'") |
| server total RSS (all workers) | $(json "$out" "f\"{d['server_after']['usage']['rss_bytes']/2**20:.0f} MiB\"") |
| bench layout | $(json "$out" "d['layout']['plan']"); $(json "$out" "d['layout']['processes']") processes |
TXT
)
  echo "$summary"
  if [ -n "$SCALE_MD" ]; then
    write_section "$SCALE_MD" "scale:$N" "## $(printf "%'d" "$N") concurrent echo connections ($(date -u +%Y-%m-%d))

Command: \`bench/scale.sh $N\` (commit $commit)

$summary"
  fi
  ok=$([ "$established" = "$N" ] && [ "$pings" = "$N" ] && [ "$failures" = 0 ] && echo 1 || echo 0)
fi
# Stop the server while its connections are still up: the drain is part of what is tested.
kill -TERM "$server"
wait "$server" && echo "scale: server drained and exited 0" >&2 || { echo "scale: server exit $?" >&2; exit 1; }
[ "$ok" = 1 ] || { echo "scale: FAILED: not every connection succeeded (see the table)" >&2; exit 1; }
