#!/usr/bin/env bash
# bench/sample_metrics.sh ADMIN SERVER_PID OUT: every 5 s while SERVER_PID lives, one line into
# OUT with the server's login and routing counters summed over its workers (from the admin
# API's /metrics), the connections closed by reason, and each worker's CPU ticks (/proc).
# For diagnosing a scale run: SAMPLER=bench/sample_metrics.sh SAMPLES_OUT=F bench/scale.sh --mqtt N
# Under a heavy run the admin API can take seconds to answer: lines come less often then.
admin=$1 server=$2 out=$3
while kill -0 "$server" 2>/dev/null; do
  t=$(date +%s)
  m=$(curl -s -m 3 "http://$admin/metrics")
  sum() { echo "$m" | awk -v f="$1" '$1==f || index($1, f"{")==1 {s+=$2} END {printf "%d", s}'; }
  line="$t admitting=$(sum tcpms_connections_admitting) open=$(sum tcpms_connections)"
  line="$line subacks_held=$(sum tcpms_routing_subacks_held_total)"
  line="$line subacks_unconfirmed=$(sum tcpms_routing_subacks_unconfirmed_total)"
  line="$line claims=$(sum tcpms_routing_claims_total) claims_timed_out=$(sum tcpms_routing_claims_timed_out_total)"
  line="$line interest_updates=$(sum tcpms_routing_interest_updates_sent_total) accept_held=$(sum tcpms_accept_held_total)"
  line="$line connect_timeouts=$(sum tcpms_mqtt_connect_timeouts_total) login_timeouts=$(sum tcpms_mqtt_login_timeouts_total)"
  closed=$(echo "$m" | grep '^tcpms_connections_closed_total' | sed 's/.*reason="\([^"]*\)"} \(.*\)/\1 \2/' |
    awk '{s[$1]+=$2} END {for (k in s) if (s[k] > 0) printf "%s=%d ", k, s[k]}')
  cpu=""
  for p in $(pgrep -P "$server" | sort -n); do cpu="$cpu $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null)"; done
  # Which workers time logins out (the front door labels each family by worker).
  lto_by=$(echo "$m" | grep '^tcpms_mqtt_login_timeouts_total{' | awk '$2 > 0 {printf "%s ", $0}')
  echo "$line closed: $closed login_timeouts_by: $lto_by cpu_ticks:$cpu" >> "$out"
  sleep 5
done
