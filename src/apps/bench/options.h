// What every tcpms-bench workload is told: the flags shared by all subcommands, with their
// defaults. Workload-specific flags live in the workload's own file (see workload.h).
//
// Threads: a plain value, filled once by the command line and then only read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace CLI {
class App;
}

namespace tcpms::benchapp {

struct CommonOptions {
  std::vector<std::string> targets;  // HOST:PORT or HOST:PORT-PORT, repeatable
  std::string source_ips;            // "127.0.0.2-127.0.0.250" or "a,b,c"; empty: automatic
  int64_t connections = -1;          // connections (connect, echo) or cycles (churn, 0: no cap);
                                     // -1: the workload's default
  double rate = 0;                   // new connections per second; 0: as fast as max_pending allows
  int64_t max_pending = 1000;        // connects in flight at once, per process
  double connect_timeout_s = 10;
  double reply_timeout_s = 10;
  double duration_s = 10;            // echo, churn: length of the measured phase
  double max_time_s = 600;           // hard stop for the whole run, whatever the phase
  unsigned threads = 1;              // event loops per process
  int processes = 0;                 // 0: as many as the descriptor limit needs
  bool json = false;                 // machine output on stdout
  std::string report_path;           // self-contained HTML report
  int server_pid = 0;                // sample this process tree's RSS and CPU
  bool no_progress = false;
  // Transport of every connection (the engine's outbound transports).
  bool tls = false;
  std::string tls_ca_file;           // verify the server (empty: do not)
  std::string tls_cert_file, tls_key_file;  // client certificate (mutual TLS)
  std::string tls_version;           // "1.2" or "1.3" (empty: the highest both speak)
  bool tls_resume = true;            // offer the last session ticket (resumed handshakes)
  std::string tls_server_name = "localhost";
  bool websocket = false;
  std::string ws_path = "/mqtt";
  // Hidden: set by the parent when it runs this process as one of its workers.
  int worker_index = -1;
  int worker_count = 0;

  bool is_worker() const noexcept { return worker_count > 0; }
};

// Adds the shared flags to a workload's subcommand.
void add_common_options(CLI::App& cmd, CommonOptions& opt);
// Cross-flag checks CLI11 cannot express; empty when fine, else the message to print.
std::string validate(const CommonOptions& opt);
// The flags that shape a run, for RunResult::parameters.
nlohmann::json common_parameters(const CommonOptions& opt);

}  // namespace tcpms::benchapp
