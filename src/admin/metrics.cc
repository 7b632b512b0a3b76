#include "admin/metrics.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace tcpms::admin {
namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <typename Get>
void per_loop(std::string& out, Server& server, const char* name, const char* type,
              const char* help, Get get) {
  family(out, name, type, help);
  for (size_t i = 0; i < server.loop_count(); ++i) {
    const LoopStats& s = server.loop(i).stats();
    fmt::format_to(std::back_inserter(out), "{}{{loop=\"{}\"}} {}\n", name,
                   server.loop(i).index(), get(s));
  }
}

}  // namespace

size_t process_rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "re")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<size_t>(resident) * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

std::string render_metrics(Server& server, const std::vector<MetricsSource>& extra) {
  std::string out;
  out.reserve(8192);
  per_loop(out, server, "tcpms_connections", "gauge", "Open connections.",
           [](const LoopStats& s) { return s.connections.get(); });
  per_loop(out, server, "tcpms_connections_accepted_total", "counter", "Accepted connections.",
           [](const LoopStats& s) { return s.accepted.get(); });
  per_loop(out, server, "tcpms_connections_admitting", "gauge",
           "Accepted connections still in their handshakes or login (max_admitting counts them).",
           [](const LoopStats& s) { return s.admitting.get(); });
  per_loop(out, server, "tcpms_accept_held_total", "counter",
           "Times a loop stopped accepting because max_admitting connections were still logging in.",
           [](const LoopStats& s) { return s.accept_held.get(); });
  per_loop(out, server, "tcpms_connections_rejected_total", "counter",
           "Connections accepted and closed at once because max_connections was reached.",
           [](const LoopStats& s) { return s.rejected_over_limit.get(); });
  per_loop(out, server, "tcpms_accept_errors_total", "counter", "Failed accept() calls.",
           [](const LoopStats& s) { return s.accept_errors.get(); });
  per_loop(out, server, "tcpms_accept_paused_total", "counter",
           "Times a listener paused because descriptors or memory ran out.",
           [](const LoopStats& s) { return s.accept_paused.get(); });
  family(out, "tcpms_connections_closed_total", "counter", "Closed connections by cause.");
  for (size_t i = 0; i < server.loop_count(); ++i) {
    const LoopStats& s = server.loop(i).stats();
    for (size_t r = 0; r < s.closed_by_reason.size(); ++r) {
      fmt::format_to(std::back_inserter(out), "tcpms_connections_closed_total{{loop=\"{}\",reason=\"{}\"}} {}\n",
                     server.loop(i).index(), close_reason_name(static_cast<CloseReason>(r)),
                     s.closed_by_reason[r].get());
    }
  }
  per_loop(out, server, "tcpms_bytes_received_total", "counter", "Bytes read from sockets.",
           [](const LoopStats& s) { return s.bytes_in.get(); });
  per_loop(out, server, "tcpms_bytes_sent_total", "counter", "Bytes written to sockets.",
           [](const LoopStats& s) { return s.bytes_out.get(); });
  per_loop(out, server, "tcpms_backpressure_pauses_total", "counter",
           "Times reading from a peer paused because its output passed the high-water mark.",
           [](const LoopStats& s) { return s.backpressure_pauses.get(); });
  per_loop(out, server, "tcpms_stale_ids_total", "counter",
           "Sends or closes addressed to a connection id that no longer exists.",
           [](const LoopStats& s) { return s.stale_ids.get(); });
  per_loop(out, server, "tcpms_pending_input_bytes", "gauge",
           "Bytes held for partial frames (0 when every client is idle).",
           [](const LoopStats& s) { return s.pending_input_bytes.get(); });
  per_loop(out, server, "tcpms_pending_output_bytes", "gauge",
           "Bytes queued for sockets that could not take them yet.",
           [](const LoopStats& s) { return s.pending_output_bytes.get(); });
  per_loop(out, server, "tcpms_connections_with_input_buffer", "gauge",
           "Connections that currently own an input buffer.",
           [](const LoopStats& s) { return s.conns_with_input.get(); });
  per_loop(out, server, "tcpms_connections_with_output_queue", "gauge",
           "Connections that currently own an output queue.",
           [](const LoopStats& s) { return s.conns_with_output.get(); });
  per_loop(out, server, "tcpms_loop_busy_seconds_total", "counter",
           "Time each loop spent outside epoll_wait (its load).",
           [](const LoopStats& s) { return fmt::format("{:.6f}", s.busy_ns.get() / 1e9); });
  per_loop(out, server, "tcpms_loop_longest_iteration_seconds", "gauge",
           "The longest time a loop spent outside epoll_wait at once (every connection waited).",
           [](const LoopStats& s) { return fmt::format("{:.6f}", s.longest_iteration_ns.get() / 1e9); });
  per_loop(out, server, "tcpms_loop_stalls_total", "counter",
           "Loop iterations that took a second or more (logged with where the time went).",
           [](const LoopStats& s) { return s.stalls.get(); });
  per_loop(out, server, "tcpms_loop_late_wakeups_total", "counter",
           "Times a loop woke a second or more after its timer was due (it waited for a CPU).",
           [](const LoopStats& s) { return s.late_wakeups.get(); });
  per_loop(out, server, "tcpms_loop_iterations_total", "counter", "Event loop iterations.",
           [](const LoopStats& s) { return s.loop_iterations.get(); });
  per_loop(out, server, "tcpms_tasks_run_total", "counter", "Cross-thread tasks run.",
           [](const LoopStats& s) { return s.tasks_run.get(); });
  family(out, "tcpms_worker_queue_depth", "gauge", "Jobs waiting for the worker pool.");
  fmt::format_to(std::back_inserter(out), "tcpms_worker_queue_depth {}\n",
                 server.workers().queued());
  family(out, "tcpms_process_resident_memory_bytes", "gauge", "Resident set size.");
  fmt::format_to(std::back_inserter(out), "tcpms_process_resident_memory_bytes {}\n",
                 process_rss_bytes());
  for (auto& source : extra) source(out);
  return out;
}

}  // namespace tcpms::admin
