// The list of workloads: one line per workload file.
#include "workloads.h"

namespace tcpms::benchapp {

Share Workload::whole_share(const CommonOptions& c) const {
  Share s;
  s.count = c.connections;
  s.rate = c.rate;
  s.max_pending = c.max_pending;
  return s;
}

std::vector<std::unique_ptr<Workload>> make_workloads() {
  std::vector<std::unique_ptr<Workload>> all;
  all.push_back(make_connect_workload());
  all.push_back(make_echo_workload());
  all.push_back(make_churn_workload());
  all.push_back(make_mqtt_conn_workload());
  all.push_back(make_mqtt_fanout_workload());
  all.push_back(make_mqtt_p2p_workload());
  all.push_back(make_mqtt_reach_workload());
  all.push_back(make_mqtt_storm_workload());
  return all;
}

}  // namespace tcpms::benchapp
