#!/usr/bin/env bash
# The long run of test_mqtt_14_persistence's kill -9 proof (docs/persistence.md): KILLS kills of
# a tcpms-server with a persistent store (every-message) while SUBS persistent subscribers
# receive a steady stream, then QoS 2 the same way. Fails if any acknowledged message is
# missing or out of order (QoS 1), or not delivered exactly once (QoS 2).
#
#   bench/persistence_soak.sh [BUILD_DIR]          KILLS=200 SUBS=1000 RATE=50 SECONDS_PER=3
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}/bin
KILLS=${KILLS:-200}
SUBS=${SUBS:-1000}
RATE=${RATE:-50}
SECONDS_PER=${SECONDS_PER:-3}
THREADS=${THREADS:-2}
[ -x "$B/tcpms-server" ] || { echo "missing $B/tcpms-server: build the release preset first" >&2; exit 1; }
driver=tests/integration/crash_driver.py
common=(--server "$B/tcpms-server" --kills "$KILLS" --seconds "$SECONDS_PER" --rate "$RATE"
        --server-arg=--threads --server-arg="$THREADS")
/usr/bin/python3 "$driver" "${common[@]}" --subscribers "$SUBS" --qos 1
/usr/bin/python3 "$driver" "${common[@]}" --subscribers $(( SUBS / 4 > 0 ? SUBS / 4 : 1 )) --qos 2
