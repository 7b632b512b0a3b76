#!/usr/bin/env bash
# Starts a three-node tcpms cluster on loopback to try: redis-server, three nodes routed
# through it and HAProxy in front. Ctrl-C stops everything.
#
#   deploy/cluster-demo.sh                # build/release/bin/tcpms-server
#   BIN=build/dev/bin deploy/cluster-demo.sh
#
# Then, e.g.:
#   mosquitto_sub -p 1883 -t 'demo/#' -v &          # through HAProxy: lands on some node
#   mosquitto_pub -p 1883 -t demo/hello -m hi        # probably another node
#   curl -s localhost:1984/metrics | grep tcpms_cluster_
#   curl -s -X POST localhost:1985/api/v1/clients/ID/send -d '{"topic":"t","payload":"x"}'
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/release/bin}
REDIS_PORT=${REDIS_PORT:-6390}
FRONT_PORT=${FRONT_PORT:-1883}
# Below the ephemeral port range, so no outgoing connection holds them.
BASE_PORT=${BASE_PORT:-1883}   # node i: MQTT BASE+i, from HAProxy (PROXY v2) BASE+50+i, admin BASE+100+i
LEASE_S=${LEASE_S:-3}
WORK=$(mktemp -d -t tcpms-cluster-demo.XXXX)
pids=()

stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap stop INT TERM EXIT

[[ -x $BIN/tcpms-server ]] || { echo "no $BIN/tcpms-server: run 'make build' (or set BIN)"; exit 1; }
for tool in redis-server haproxy; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)"; exit 1; }
done

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --logfile "$WORK/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

servers=""
for i in 1 2 3; do
  printf '[[listeners]]\nbind = "127.0.0.1:%d"\nproxy_protocol = true\n' $((BASE_PORT + 50 + i)) >"$WORK/node$i.toml"
  "$BIN/tcpms-server" --config "$WORK/node$i.toml" --listen "127.0.0.1:$((BASE_PORT + i))" \
    --admin-listen "127.0.0.1:$((BASE_PORT + 100 + i))" \
    --cluster "redis://127.0.0.1:$REDIS_PORT" --node-id "node$i" --cluster-lease-s "$LEASE_S" \
    >"$WORK/node$i.log" 2>&1 &
  pids+=($!)
  servers+="  server node$i 127.0.0.1:$((BASE_PORT + 50 + i)) send-proxy-v2 check port $((BASE_PORT + 100 + i))"$'\n'
done

sed -e "s/^  bind :1883/  bind 127.0.0.1:$FRONT_PORT/" -e '/^  server node/d' -e 's/^  nbthread 4/  nbthread 1/' \
  -e 's/^  maxconn 1000000/  maxconn 4000/' deploy/haproxy.cfg >"$WORK/haproxy.cfg"
printf '%s' "$servers" >>"$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" &
pids+=($!)

sleep 1
cat <<INFO
tcpms cluster demo (logs in $WORK):
  MQTT through HAProxy  127.0.0.1:$FRONT_PORT
  nodes (MQTT / admin)  node$i on 127.0.0.1:$((BASE_PORT))+i / admin $((BASE_PORT + 100))+i
  Redis                 127.0.0.1:$REDIS_PORT   (redis-cli -p $REDIS_PORT keys 'tcpms:*')
Ctrl-C stops everything.
INFO
tail -n +1 -f "$WORK"/node*.log &
pids+=($!)
wait
