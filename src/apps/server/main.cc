// tcpms-server: parses options, starts the engine with the chosen protocol and the admin
// API, waits for a signal on a signalfd, drains, exits. With --processes P > 1 this process
// becomes a supervisor (src/workers/supervisor.h) and each of P forked workers runs the same
// server on the same port, linked to the others by a PeerMesh so that a publish or a push
// reaches a client whichever worker holds it.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <thread>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "admin/admin_server.h"
#include "admin/front_door.h"
#include "broker/auth_files.h"
#include "broker/auth_http.h"
#include "broker/broker.h"
#include "broker/connection_image.h"
#include "broker/mqtt_handler.h"
#include "cluster/continuation.h"
#include "cluster/redis_transport.h"
#include "cluster_handover.h"
#include "config/settings.h"
#include "doctor/checks.h"
#include "echo/echo_handler.h"
#include "handover_giver.h"
#include "handover_taker.h"
#include "json_log_formatter.h"
#include "listeners.h"
#include "net/port_holder.h"
#include "on_loop.h"
#include "net/socket.h"
#include "mqtt_push_target.h"
#include "server_options.h"
#include "store/store.h"
#include "successor.h"
#include "supervisor_handover.h"
#include "upgrade_command.h"
#include "tcpms/server.h"
#include "tcpms/signal_watcher.h"
#include "routing/peer_router.h"
#include "workers/peer_mesh.h"
#include "workers/supervisor.h"

namespace tcpms::app {
namespace {

// Descriptors kept back from the connection cap for listeners, epoll, eventfds, the admin
// API, the worker mesh, logs and the worker pool (the same reserve tcpms-doctor assumes).
constexpr int64_t kReservedFds = 256;

int64_t default_max_connections() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  return std::max<int64_t>(static_cast<int64_t>(rl.rlim_cur) - kReservedFds, 1);
}

std::string with_port(Endpoint at, uint16_t port) {
  at.set_port(port);
  return at.to_string();
}

// This node's id in a cluster: --node-id (cluster.node_id), else the host name.
std::string cluster_node_id(const ServerOptions& opt) {
  if (!opt.cluster_node_id.empty()) return opt.cluster_node_id;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

broker::HttpAuthConfig http_auth_config(const ServerOptions& opt) {
  broker::HttpAuthConfig c;
  c.url = opt.auth_http_url;
  c.bearer_token = opt.auth_http_token;
  c.timeout_ms = opt.auth_http_timeout_ms;
  c.allow_ttl_s = opt.auth_http_allow_ttl_s;
  c.deny_ttl_s = opt.auth_http_deny_ttl_s;
  c.cache_entries = opt.auth_http_cache_entries;
  c.failure_threshold = opt.auth_http_failure_threshold;
  c.retry_after_ms = opt.auth_http_retry_after_ms;
  c.fallback_to_files = opt.auth_http_when_down == "password_file";
  c.threads = opt.auth_http_threads;
  c.authorize = opt.auth_http_authorize;
  return c;
}

// SIGTERM/SIGINT: /readyz already says 503; keep accepting for drain.announce_ms so that a
// balancer polling it takes this server out before connections are refused. A second
// SIGTERM/SIGINT cuts the wait short.
void announce_drain(const ServerOptions& opt, int sig, SignalWatcher& signals) {
  if (opt.drain_announce_ms == 0) return;
  spdlog::info("{}: not ready (/readyz 503); still accepting for {} ms before draining "
               "(drain.announce_ms; signal again to drain now)",
               strsignal(sig), opt.drain_announce_ms);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.drain_announce_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    int again = signals.wait(static_cast<int>(left.count()));
    if (again == SIGTERM || again == SIGINT) return;
  }
}

// How worker 0's front door merges the workers' answers (admin/front_door.h).
admin::FrontDoorConfig front_door_config(const ServerOptions& opt) {
  admin::FrontDoorConfig c;
  c.bearer_token = opt.admin_token;
  c.order = opt.protocol == "mqtt" ? admin::PageOrder::kById : admin::PageOrder::kByConnection;
  c.routed_push = opt.protocol == "mqtt";
  // Families that describe one process get a worker label; the server's totals are summed.
  c.metrics.per_worker = {"tcpms_process_", "tcpms_worker_queue_depth", "tcpms_mesh_",
                          "tcpms_routing_", "tcpms_mqtt_retained_messages",
                          "tcpms_mqtt_topic_taps", "tcpms_mqtt_connect_rate_sources",
                          "tcpms_mqtt_shared_groups", "tcpms_store_"};
  // The workers' own admin counters count the front door's requests to them.
  c.metrics.skip = {"tcpms_admin_"};
  c.same_everywhere_stats = {"retained"};  // every worker holds every retained message
  return c;
}

// Which worker this process is, when the server runs as several.
struct WorkerRole {
  unsigned index = 0;
  unsigned count = 1;
  std::string group;  // names the PeerMesh sockets: the supervisor's pid
  workers::WorkerChannels* channels = nullptr;  // the worker's (supervisor.h)
  // The interest tables every worker shares (MQTT), mapped by the supervisor before it forks.
  routing::InterestRegion* shared_interest = nullptr;
};

// What SIGUSR2 needs to start this server again: its binary as resolved at start-up and its
// command line (docs/upgrade.md).
struct StartUp {
  std::string binary;
  std::vector<std::string> argv;
};

// Why SIGUSR2 cannot hand this server over yet, or "" when it can.
std::string handover_unsupported(const ServerOptions& opt) {
  if (opt.protocol != "echo" && opt.protocol != "mqtt")
    return "the upgrade handover of " + opt.protocol + " connections is not implemented";
  return {};
}

void write_pid(const ServerOptions& opt) {
  if (opt.pid_file.empty()) return;
  std::string error;
  if (!write_pid_file(opt.pid_file, ::getpid(), error)) spdlog::error("pid_file: {}", error);
}

// The persistent store (persistence.dir). Each worker process has a directory of its own.
store::StoreConfig store_config(const ServerOptions& opt, const WorkerRole& role) {
  store::StoreConfig sc;
  sc.dir = opt.persistence_dir;
  if (role.count > 1)
    sc.dir = (std::filesystem::path(sc.dir) / fmt::format("worker-{}", role.index)).string();
  std::string error;
  sc.sync = *store::parse_sync_policy(opt.persistence_sync, error);  // checked by the settings
  sc.on_damage = opt.persistence_on_damage == "refuse" ? store::OnDamage::kRefuse
                                                      : store::OnDamage::kSalvage;
  return sc;
}

// Opened, checked and read back into the broker before its loops exist. Null after logging
// why.
std::unique_ptr<store::Store> open_store(const ServerOptions& opt, const WorkerRole& role,
                                         broker::Broker& broker) {
  std::string error;
  store::RecoveryReport report;
  auto s = store::Store::open(store_config(opt, role), broker.recovery_visitor(), report, error);
  if (!s) spdlog::critical("persistence.dir: {}", error);
  return s;
}

// After an upgrade handover: the store's files, once the old process (`old_pid`) lets go of
// them (it does as the handover commits). Without them this process serves on from memory and
// writes nothing; it says so loudly, as a restart would lose what changed since.
void take_store_files(store::Store& store, int old_pid, uint32_t wait_ms, bool& settled) {
  if (settled) return;
  settled = true;
  std::string error;
  if (store.take_files(wait_ms, error)) {
    store.start();
    return;
  }
  store.abandon_files();
  spdlog::critical("store: could not take {} over from pid {}: {}; serving on WITHOUT "
                   "persistence until restarted (nothing is written)",
                   store.config().dir, old_pid, error);
}

int serve(const ServerOptions& opt, config::Settings& settings, std::vector<Listener> listeners,
          std::optional<Endpoint> admin_at, const WorkerRole& role, SignalWatcher& signals,
          const StartUp& start_up) {
  const bool mqtt = opt.protocol == "mqtt";
  ServerConfig config;
  config.threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
  config.loop_index_base = role.index * config.threads;  // ConnIds name their worker too
  config.shared_ports = role.count > 1;
  config.port_wait_ms = opt.port_wait_ms;
  config.max_connections = opt.max_connections ? opt.max_connections : default_max_connections();
  config.loop.idle_timeout_ms = opt.idle_timeout_s * 1000;
  config.loop.max_admitting = opt.max_pending_logins;
  config.loop.output_high_water_bytes = opt.output_high_water;
  config.loop.output_low_water_bytes = opt.output_high_water / 4;
  config.loop.output_hard_limit_bytes = opt.output_hard_limit;
  // Declared before the server: loops hold handlers that point into the broker.
  std::unique_ptr<broker::Broker> mqtt_broker;
  std::shared_ptr<broker::AuthFiles> auth_files;
  std::shared_ptr<broker::HttpAuthService> auth_http;  // stopped before the loops go away
  if (mqtt) {
    // The slow-consumer bound is the engine's high-water mark, so on_writable fires when a
    // backlogged client drains and its session queue can move again.
    config.loop.output_high_water_bytes = opt.mqtt.max_queued_bytes;
    config.loop.output_low_water_bytes = opt.mqtt.max_queued_bytes / 4;
    config.loop.output_hard_limit_bytes =
        std::max<uint64_t>(opt.output_hard_limit, opt.mqtt.max_queued_bytes * 2);
    // A partial packet may grow to the packet limit, not further.
    config.loop.input_limit_bytes = opt.mqtt.max_packet_size + 8;
    // Generated client ids must not collide across worker processes or cluster nodes:
    // "tcpms-<node>-w<k>-<n>", each part only when there are several.
    broker::BrokerConfig broker_config = opt.mqtt;
    std::string prefix = broker_config.client_id_prefix;
    if (!opt.cluster_redis.empty()) prefix += cluster_node_id(opt) + "-";
    if (role.count > 1) prefix += fmt::format("w{}-", role.index);
    broker_config.client_id_prefix = std::move(prefix);
    mqtt_broker = std::make_unique<broker::Broker>(std::move(broker_config));
    // Passwords, ACL and the failed-login throttle (docs/auth.md); the files are re-read on
    // SIGHUP below.
    broker::AuthFilesConfig ac;
    ac.password_file = opt.auth_password_file;
    ac.acl_file = opt.auth_acl_file;
    ac.allow_anonymous = opt.auth_allow_anonymous ||
                         (!opt.mqtt_deny_anonymous && opt.auth_password_file.empty());
    ac.login_guard.per_user_address = {opt.auth_login_failures_per_s, opt.auth_login_failure_burst};
    ac.login_guard.per_address = {opt.auth_login_failures_per_s_per_address,
                                  opt.auth_login_failure_burst_per_address};
    std::string auth_error;
    auth_files = broker::AuthFiles::load(ac, &auth_error);
    if (!auth_files) {
      spdlog::critical("{}", auth_error);
      return kExitUsage;
    }
    if (!opt.auth_http_url.empty()) {
      // An HTTP service decides (broker/auth_http.h); the files are its fallback.
      auth_http = std::make_shared<broker::HttpAuthService>(http_auth_config(opt));
      mqtt_broker->set_authenticator(std::make_unique<broker::HttpAuthenticator>(auth_http, auth_files));
      mqtt_broker->set_authorizer(std::make_unique<broker::HttpAuthorizer>(auth_http, auth_files));
      spdlog::info("auth: HTTP service {} (authorization {}; when down: {})", opt.auth_http_url,
                   opt.auth_http_authorize ? "too" : "not asked", opt.auth_http_when_down);
    } else if (!opt.mqtt_auth_users.empty()) {
      std::map<std::string, std::string> users;
      for (const auto& u : opt.mqtt_auth_users) {
        auto colon = u.find(':');
        users[u.substr(0, colon)] = u.substr(colon + 1);
      }
      mqtt_broker->set_authenticator(
          std::make_unique<broker::StaticAuthenticator>(std::move(users), !opt.mqtt_deny_anonymous));
    } else if (!ac.password_file.empty() || !ac.allow_anonymous) {
      mqtt_broker->set_authenticator(std::make_unique<broker::FileAuthenticator>(auth_files));
    }
    if (opt.auth_http_url.empty())
      mqtt_broker->set_authorizer(std::make_unique<broker::AclAuthorizer>(auth_files));
    if (!ac.password_file.empty() || !ac.acl_file.empty()) {
      spdlog::info("auth: password file {}, ACL file {}, anonymous clients {}",
                   ac.password_file.empty() ? "(none)" : ac.password_file,
                   ac.acl_file.empty() ? "(none)" : ac.acl_file,
                   ac.allow_anonymous ? "allowed" : "refused");
    }
  }
  // --cluster: this node routes to the other nodes through Redis streams, with the same
  // routing layer as worker processes (PeerRouter; src/cluster, docs/cluster.md).
  // Declared before the server and the broker's router: the router holds a reference to it,
  // and its threads call into the broker until stop().
  std::unique_ptr<cluster::RedisTransport> cluster_transport;
  if (mqtt && !opt.cluster_redis.empty()) {
    cluster::ClusterConfig cc;
    std::string error;
    auto at = cluster::parse_redis_url(opt.cluster_redis, &error);
    if (!at) {
      spdlog::critical("cluster.redis (--cluster): {}", error);
      return kExitUsage;
    }
    cc.redis = *at;
    cc.node_id = cluster_node_id(opt);
    cc.lease_ms = opt.cluster_lease_s * 1000;
    cc.queue_capacity = opt.cluster_queue_frames;
    cluster_transport = std::make_unique<cluster::RedisTransport>(std::move(cc));
    if (std::string err = cluster_transport->open(); !err.empty()) {
      spdlog::critical("cluster: {}", err);
      return kExitUnavailable;
    }
  }
  // Declared before the server, so it outlives the loops: their link handlers point into it.
  std::unique_ptr<workers::PeerMesh> mesh;
  routing::PeerRouter* peer_router = nullptr;  // owned by the broker
  Server server(config);
  if (role.count > 1) {
    mesh = std::make_unique<workers::PeerMesh>(role.group, role.index, role.count);
    if (mqtt_broker) {
      // One routing layer between the workers: publishes by interest, client ids by home.
      routing::RouterOptions ro;
      ro.loops = config.threads;
      // A clean CONNECT (and a SUBACK) waits at most 3 s, as before: it goes on without an
      // answer; a persistent one, refused without it, waits the whole setting.
      ro.persistent_claim_timeout_ms = opt.workers_session_fetch_timeout_ms;
      ro.claim_timeout_ms = std::min<uint32_t>(3000, opt.workers_session_fetch_timeout_ms);
      ro.shared_interest = role.shared_interest;
      auto router = std::make_unique<routing::PeerRouter>(*mqtt_broker, *mesh, ro);
      peer_router = router.get();
      mqtt_broker->set_router(std::move(router));
    }
  } else if (cluster_transport) {
    routing::RouterOptions ro;
    ro.loops = config.threads;
    ro.claim_timeout_ms = opt.cluster_session_fetch_timeout_ms;
    // Slots are node ids ever seen, not nodes up: interest updates go to each node directly
    // (no hub, which would be slot 0 whether it runs or not), spaced as for a few peers.
    ro.interest_relay_above = routing::kMaxPeers;
    ro.interest_interval_ms = 5;
    auto router = std::make_unique<routing::PeerRouter>(*mqtt_broker, *cluster_transport, ro);
    peer_router = router.get();
    mqtt_broker->set_router(std::move(router));
  }
  // Started by a running server's SIGUSR2: its listeners and connections come to us, over
  // this socket.
  const bool worker = role.count > 1;
  std::optional<UniqueFd> handover_fd;
  {
    std::string error;
    if (!worker) handover_fd = handover_socket_from_environment(error);
    else if (role.channels != nullptr && role.channels->handover) handover_fd = std::move(role.channels->handover);
    if (!handover_fd && !error.empty()) {
      spdlog::critical("handover: {}", error);
      return kExitUsage;
    }
  }
  // Declared after the server: destroyed (its last writes committed) before the loops its
  // durability notices are posted to.
  std::unique_ptr<store::Store> store;
  // One protocol handler per loop serves every listener; each listener brings its transport.
  uint8_t protocol_handler;
  if (mqtt) {
    mqtt_broker->attach(server);
    if (!opt.persistence_dir.empty()) {
      // Taking over: the sessions come over the handover socket, not from the files, which the
      // old process holds until the handover commits (store.h).
      store = handover_fd ? store::Store::taking_over(store_config(opt, role))
                          : open_store(opt, role, *mqtt_broker);
      if (!store) return kExitUnavailable;
      mqtt_broker->set_store(&store->writer());
    }
    protocol_handler = server.add_handler(mqtt_broker->handler_factory());
  } else {
    protocol_handler = server.add_handler([](EventLoop&) { return std::make_unique<echo::EchoHandler>(); });
  }
  for (const auto& l : listeners) {
    ListenerOptions options = l.options;
    // An MQTT client speaks first (CONNECT; before it a PROXY header, a ClientHello or an
    // HTTP Upgrade): the kernel keeps a silent connection until it speaks, for up to the
    // first deadline that would close it (the connect deadline, or a shorter handshake
    // deadline, in whole seconds), which then runs from its first byte. A client that is slow
    // to send (its process waited for a CPU) is not cut for it, and the silent cost nothing.
    if (mqtt) {
      uint32_t defer_s = opt.mqtt_connect_timeout_s;
      if (!options.transport.plain())
        defer_s = std::min(defer_s, (options.transport.handshake_timeout_ms + 999) / 1000);
      options.defer_accept_s = defer_s;
    }
    server.listen(l.at, protocol_handler, options);
  }
  if (mesh) mesh->attach(server);
  std::optional<HandoverTaker> taker;
  bool store_settled = false;  // taken over (or given up): take_store_files
  // A worker started by an upgrade stops for good (retired: its supervisor does not restart
  // it) when it could take nothing: its old counterpart serves on.
  const int cannot_take = worker ? kExitRetired : kExitUnavailable;
  {
    if (handover_fd) {
      taker.emplace(std::move(*handover_fd), opt.upgrade_timeout_ms);
      if (mqtt) {
        // Offline sessions spread over the loops in turn; retained messages are the broker's.
        taker->set_state_importer([&server, b = mqtt_broker.get(), t = cluster_transport.get(), peer_router,
                                   next = size_t{0}](ByteView item) mutable {
          if (item.empty()) return false;
          // A cluster node: this process goes on as the same node (its transport starts below).
          if (static_cast<char>(item[0]) == cluster::kNodeItem) return continue_cluster_node(item, t, peer_router);
          const bool retained = static_cast<char>(item[0]) == broker::kRetainedItem;
          EventLoop& loop = server.loop(retained ? 0 : next++ % server.loop_count());
          bool ok = false;
          run_on_loop(loop, [&](EventLoop& l) {
            broker::MqttHandler& h = *b->handler_for(l.index());
            ok = retained ? h.import_retained(item) : h.import_offline_session(item);
          });
          return ok;
        });
      }
      if (std::string err = taker->take_listeners(server, opt.protocol, listeners); !err.empty()) {
        spdlog::critical("handover: {}; the running server keeps serving", err);
        return cannot_take;
      }
      // Before this process reads its clients' input: the store's files (the old process lets
      // go of them as the commit is answered: acknowledgements here wait for the first commit
      // on them), then, with worker processes, the new mesh: nothing is read before it is up
      // and every peer's interest is known, as a publish read earlier would miss the
      // subscribers of a worker not heard of yet (docs/upgrade.md, "Worker processes").
      taker->set_before_release([&taker, &store, &store_settled, &mesh, worker, peer_router,
                                 t = cluster_transport.get(), timeout_ms = opt.upgrade_timeout_ms] {
        if (store) take_store_files(*store, taker->old_pid(), timeout_ms, store_settled);
        // A cluster node reads its stream on from where the old process stopped, and sends on,
        // before its clients' input is read (what they publish goes to the other nodes).
        if (t) t->start();
        if (!worker) return;
        mesh->start();
        if (peer_router == nullptr) return;
        peer_router->enroll_homed_here();
        const auto since = std::chrono::steady_clock::now();
        const auto until = since + std::chrono::milliseconds(timeout_ms);
        while (!peer_router->knows_every_peer()) {
          if (std::chrono::steady_clock::now() >= until) {
            spdlog::warn("handover: not every other worker was heard of within {} ms; reading "
                         "input anyway", timeout_ms);
            return;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        // How long the clients that moved here waited for the new mesh, beyond the handover.
        spdlog::info("handover: every other worker heard of after {} ms; reading input",
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - since).count());
      });
    }
  }
  if (std::string err = server.start(); !err.empty()) {
    spdlog::critical("{}", err);
    return kExitUnavailable;
  }
  bool mesh_started = false;
  const bool took_over = taker.has_value();  // then the store's files come after the handover
  if (taker) {
    if (std::string err = taker->take_connections(server); !err.empty()) {
      spdlog::error("handover: stopped after {} connection(s): {}; the old process (pid {}) "
                    "keeps the rest", taker->taken(), err, taker->old_pid());
      if (taker->taken() == 0) {  // it serves everything: nothing to do here
        if (auth_http) auth_http->stop();
        server.stop();
        server.wait();
        return cannot_take;
      }
    } else {
      mesh_started = worker;
      spdlog::info("handover: took the listeners and {} connection(s) from pid {}",
                   taker->taken(), taker->old_pid());
      if (taker->state_items() != 0)
        spdlog::info("handover: took {} item(s) of state on no connection (offline sessions, "
                     "retained messages{})", taker->state_items(),
                     cluster_transport ? ", the cluster node" : "");
    }
    // Taken before reading input; here when the handover stopped after some connections (a
    // successor older than handover version 4: the old process keeps the rest, and the files).
    if (store) take_store_files(*store, taker->old_pid(), opt.upgrade_timeout_ms, store_settled);
    taker.reset();
  }
  if (role.count == 1) write_pid(opt);  // with worker processes, the supervisor's pid
  if (mesh && !mesh_started) mesh->start();
  if (cluster_transport) cluster_transport->start();
  if (store && !took_over) {
    store->start();
    mqtt_broker->after_recovery();  // the router hears of the recovered sessions
  }

  // The admin API. One process: on the operator's address. Worker processes: each worker
  // serves its own API on a private socket, and worker 0 answers the operator's address for
  // all of them (admin/front_door.h).
  std::unique_ptr<MqttPushTarget> mqtt_push;  // outlives the AdminServers (declared before them)
  std::unique_ptr<admin::AdminServer> own_admin;  // this process's API
  std::unique_ptr<admin::FrontDoor> front_door;
  std::unique_ptr<admin::AdminServer> front_admin;  // worker 0: the operator's address
  admin::AdminServer* admin = nullptr;  // the one on the operator's address, if here
  if (admin_at) {
    const bool workers = role.count > 1;
    admin::AdminConfig ac;
    ac.listen = *admin_at;
    ac.bearer_token = opt.admin_token;
    ac.port_wait_ms = opt.port_wait_ms;
    ac.limits.request_timeout_ms = opt.admin_request_timeout_ms;
    ac.limits.max_connections = opt.admin_max_connections;
    ac.limits.max_connections_per_source = opt.admin_max_connections_per_source;
    admin::AdminConfig own_config = ac;
    if (workers) own_config.listen = *Endpoint::parse(admin::FrontDoor::socket_name(role.group, role.index));
    own_admin = std::make_unique<admin::AdminServer>(server, own_config);
    if (mqtt_broker) {
      mqtt_push = std::make_unique<MqttPushTarget>(server, *mqtt_broker);
      own_admin->set_push_target(mqtt_push.get());
      own_admin->add_metrics_source(
          [b = mqtt_broker.get()](std::string& out) { b->render_metrics(out); });
    }
    if (mesh) {
      own_admin->add_metrics_source([m = mesh.get()](std::string& out) { m->render_metrics(out); });
    }
    if (peer_router) {
      own_admin->add_metrics_source([r = peer_router](std::string& out) { r->render_metrics(out); });
    }
    if (cluster_transport) {
      own_admin->add_metrics_source([t = cluster_transport.get(), r = peer_router](std::string& out) {
        t->mutable_metrics().nodes_with_interest.store(r->peers_with_interest(), std::memory_order_relaxed);
        t->render_metrics(out);
      });
    }
    own_admin->add_metrics_source([&server](std::string& out) { render_transport_metrics(server, out); });
    if (workers && role.index == 0) {
      // Worker 0 answers its own part in-process and asks the others on their sockets.
      std::vector<Endpoint> sockets;
      for (unsigned i = 0; i < role.count; ++i)
        sockets.push_back(*Endpoint::parse(admin::FrontDoor::socket_name(role.group, i)));
      admin::WorkerCalls calls(
          role.index, std::move(sockets),
          [own = own_admin.get()](std::string_view request) { return own->answer_in_process(request); },
          std::chrono::milliseconds(8000));
      front_door = std::make_unique<admin::FrontDoor>(std::move(calls), front_door_config(opt));
      admin::AdminConfig fc = ac;
      fc.front_door = front_door.get();
      fc.shared_port = !admin_at->is_unix();  // the supervisor holds it (run() below)
      front_admin = std::make_unique<admin::AdminServer>(server, std::move(fc));
    }
    // Worker 0 serves the operator's address (its own API is answered in-process, never
    // listens); the other workers their private sockets; one process, the operator's address.
    admin::AdminServer* serving = front_admin ? front_admin.get() : own_admin.get();
    if (std::string err = serving->start(); !err.empty()) {
      spdlog::critical("{}", err);
      // The router's threads call into the broker's loops: stop them before the loops go.
      if (cluster_transport) cluster_transport->stop();
      if (auth_http) auth_http->stop();
      server.stop();
      server.wait();
      return kExitUnavailable;
    }
    if (!workers || role.index == 0) admin = serving;
  }
  // One line that says what listens where; tests and scripts parse "listening on" from it,
  // so with worker processes only worker 0 (which has the admin address) says it.
  if (role.count > 1 && role.index != 0) {
    spdlog::info("tcpms-server {} worker {} of {} serving {}; {} loops, max {} connections{}",
                 opt.protocol, role.index, role.count, describe_listeners(listeners, server),
                 server.loop_count(), config.max_connections,
                 own_admin ? "; admin API through worker 0" : "");
  } else {
    spdlog::info("tcpms-server {} listening on {}{}; {} loops, max {} connections{}; stop with "
                 "Ctrl-C or SIGTERM",
                 opt.protocol, describe_listeners(listeners, server),
                 admin ? ", admin on " + with_port(*admin_at, admin->port()) : std::string(),
                 server.loop_count(), config.max_connections,
                 role.count > 1 ? fmt::format(" (worker {} of {})", role.index, role.count)
                                : std::string());
  }

  // Connections that are clients: a worker's mesh links are not (they close only as the
  // other workers exit), so a worker that handed over waits for and reports clients only.
  auto clients_here = [&server, &mesh] {
    const size_t all = server.connection_count();
    const size_t links = mesh ? std::min<size_t>(mesh->links_open(), all) : 0;
    return all - links;
  };
  // A worker's line to its supervisor: an upgrade's channel comes here (supervisor_handover.h).
  std::optional<net::HandoverChannel> control;
  if (role.channels != nullptr && role.channels->control) control.emplace(std::move(role.channels->control));
  bool handed_over = false;  // SIGUSR2 done: serving only what could not move, until it closes
  for (;;) {
    if (handed_over && clients_here() == 0) {
      spdlog::info("handover: nothing left here; exiting");
      server.drain(std::chrono::milliseconds(0));
      break;
    }
    int sig = signals.wait(handed_over ? 1000 : -1);
    if (sig == SIGCHLD) {
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {}  // a successor that did not make it
      continue;
    }
    if (sig == SIGUSR2) {
      if (handed_over) {
        spdlog::warn("SIGUSR2: already handed over to a new process; ignored");
        if (worker && control) {  // the supervisor waits for an answer
          uint32_t epoch = 0;
          std::string error;
          worker_channel_from_supervisor(*control, epoch, error);
          report_to_supervisor(*control, false, 0, "this worker has handed over already");
        }
        continue;
      }
      // The process in the pid file answers `--upgrade` when it does not hand over.
      auto refuse = [&](const std::string& why) {
        if (!worker) write_upgrade_refusal(opt.pid_file, why);
      };
      if (std::string why = handover_unsupported(opt); !why.empty()) {
        spdlog::error("SIGUSR2: {}; nothing changed, this process keeps serving", why);
        refuse(why);
        continue;
      }

      GiverConfig gc;
      std::string cluster_error;  // why this node's state could not be handed over
      gc.binary = opt.upgrade_binary.empty() ? start_up.binary : opt.upgrade_binary;
      gc.argv = start_up.argv;
      gc.protocol = opt.protocol;
      gc.client_listeners = listeners.size();
      gc.timeout_ms = opt.upgrade_timeout_ms;
      gc.batch = opt.upgrade_batch;
      if (mqtt) {
        // Offline sessions and retained messages travel after the connections (input held).
        gc.state_items = [&server, b = mqtt_broker.get(), t = cluster_transport.get(), peer_router,
                          &cluster_error] {
          std::vector<std::string> items;
          for (size_t i = 0; i < server.loop_count(); ++i)
            run_on_loop(server.loop(i), [&](EventLoop& l) {
              broker::MqttHandler& h = *b->handler_for(l.index());
              h.close_what_cannot_move();  // their sessions travel as offline ones
              h.export_offline_sessions(items);
            });
          broker::export_retained(*b, items);
          // Last: once the rest is out, this node's sequence stops (cluster_handover.h).
          if (t && peer_router)
            if (auto item = cluster_state_item(*t, *peer_router, cluster_error)) items.push_back(std::move(*item));
          return items;
        };
      }
      UniqueFd worker_channel;  // worker processes: to the new worker of our index
      if (worker) {
        std::string error = "no control socket";
        uint32_t epoch = 0;
        std::optional<UniqueFd> fd;
        if (control) fd = worker_channel_from_supervisor(*control, epoch, error);
        if (!fd) {
          spdlog::error("SIGUSR2: {}; nothing changed", error);
          continue;
        }
        worker_channel = std::move(*fd);
        gc.before_commit = [&control] { return await_commit(*control); };
        if (peer_router != nullptr) {
          // Before anything is parked, every frame the other workers sent before they held
          // their input must have reached the connections here (docs/upgrade.md).
          gc.after_hold = [&server, peer_router, epoch, timeout_ms = opt.upgrade_timeout_ms]() -> std::string {
            peer_router->send_drain_marks(epoch);
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
            while (!peer_router->drained(epoch)) {
              if (std::chrono::steady_clock::now() >= until)
                return fmt::format("not every other worker stopped reading within {} ms (its "
                                   "handover did not start)", timeout_ms);
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            run_posted_hops(server);
            return {};
          };
        }
      }
      if (store && store->writer().policy().mode == store::SyncMode::kEveryMessage) {
        // Acknowledgements held for the store cannot travel (MqttHandler::export_state): with
        // input held nothing new is held, so wait until what is held has gone out (this
        // store's commits, other workers' answers to what was sent them) before the first
        // connection moves. What is still held when the time is up stays and is closed.
        gc.after_hold = [&server, b = mqtt_broker.get(), then = std::move(gc.after_hold),
                         timeout_ms = opt.upgrade_timeout_ms]() -> std::string {
          if (then)
            if (std::string e = then(); !e.empty()) return e;
          const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
          for (;;) {
            bool held = false;
            for (size_t i = 0; i < server.loop_count(); ++i)
              run_on_loop(server.loop(i), [&](EventLoop& l) { held |= b->handler_for(l.index())->holds_durable_output(); });
            if (!held) break;
            if (std::chrono::steady_clock::now() >= until) {
              spdlog::warn("SIGUSR2: acknowledgements still wait for the store after {} ms; "
                           "their connections cannot move", timeout_ms);
              break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
          return {};
        };
      }
      if (cluster_transport && peer_router) {
        // A cluster node's stream is read no more once its clients' input is held (and once
        // the acknowledgements above are out: other nodes' answers to them come through it),
        // and what was read reaches the connections before they move; a node whose last
        // frames could not be written does not hand over (cluster_handover.h).
        gc.after_hold = [&server, t = cluster_transport.get(), then = std::move(gc.after_hold)]() -> std::string {
          if (then)
            if (std::string e = then(); !e.empty()) return e;
          hold_cluster_input(*t, server);
          return {};
        };
        gc.before_commit = [&cluster_error, then = std::move(gc.before_commit)]() -> std::string {
          if (!cluster_error.empty()) return "cluster: " + cluster_error;
          return then ? then() : std::string();
        };
      }
      if (store) {
        // The new process writes everything anew once it has the files (store.h), and its
        // acknowledgements wait for that: the files go the moment the commit is answered.
        // What this process still does (letting go of the sessions that moved, closing what
        // could not move) is not written.
        gc.after_commit = [&store] {
          store->release();
          spdlog::info("SIGUSR2: the store {} is the new process's now", store->config().dir);
        };
      }
      if (cluster_transport) {
        // The lease and the stream are the new process's: no goodbye, nothing more sent.
        gc.after_commit = [t = cluster_transport.get(), then = std::move(gc.after_commit)] {
          if (then) then();
          t->stop_handed_over();
        };
      }
      spdlog::info("SIGUSR2: handing {} connection(s) over to a new process", clients_here());
      GiverOutcome outcome = give_everything(server, gc, [&] {
        // The new process binds the admin port itself once we say Done.
        if (front_admin) front_admin->stop();
        if (own_admin) own_admin->stop();
      }, std::move(worker_channel));
      if (worker && control) report_to_supervisor(*control, outcome.completed, outcome.handed, outcome.error);
      if (!outcome.completed) {  // logged; we serve on
        if (cluster_transport) cluster_transport->release_holds();
        refuse(outcome.error.empty() ? "the handover stopped (see its log)" : outcome.error);
        continue;
      }
      handed_over = true;
      if (mqtt) {
        // Input stays held here (hold_input_for_handover): what did not move (a CONNECT being
        // decided, a paused reader, TLS kept by OpenSSL, a successor too old for TLS or
        // WebSocket) is closed now, 5.0 clients with
        // DISCONNECT 0x8B (server shutting down); nothing they sent since the handover began
        // was read, so nothing of it was acknowledged, and they reconnect to the new process.
        spdlog::info("SIGUSR2: handed over: pid {} has the listeners and {} connection(s); "
                     "closing the {} that could not move", outcome.successor, outcome.handed,
                     clients_here());
        server.drain(std::chrono::milliseconds(opt.drain_timeout_ms));
        break;
      }
      spdlog::info("SIGUSR2: handed over: pid {} has the listeners and {} connection(s); {} "
                   "stay here until they close", outcome.successor, outcome.handed,
                   clients_here());
      continue;
    }
    if (sig == SIGHUP) {
      // Certificates first: a renewed certificate is what a SIGHUP is most often for. New
      // handshakes use it; established connections keep theirs.
      reload_certificates(listeners);
      // Password and ACL files: a file that fails to parse keeps its old rules; connections
      // stay up, new CONNECTs and checks see the new rules.
      if (auth_files) {
        for (const auto& line : auth_files->reload()) {
          if (line.ok) spdlog::info("SIGHUP: {}", line.text);
          else spdlog::error("SIGHUP: {}", line.text);
        }
      }
      if (settings.config_path().empty()) {
        spdlog::info("SIGHUP: no --config file to re-read");
        continue;
      }
      auto result = settings.reload();
      for (const auto& line : result.log_lines()) spdlog::warn("SIGHUP: {}", line);
      if (result.ok() && result.applied.empty() && result.needs_restart.empty())
        spdlog::info("SIGHUP: {} re-read, nothing changed", settings.config_path());
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      if (own_admin) own_admin->set_ready(false);  // /readyz: 503 from now on
      if (front_admin) front_admin->set_ready(false);
      announce_drain(opt, sig, signals);
      spdlog::info("{}: draining {} connections (up to {} ms)", strsignal(sig),
                   server.connection_count(), opt.drain_timeout_ms);
      // Say goodbye first, so the other nodes stop routing here while we drain.
      if (cluster_transport) cluster_transport->stop();
      server.drain(std::chrono::milliseconds(opt.drain_timeout_ms));
      break;
    }
  }
  server.wait();
  if (cluster_transport) cluster_transport->stop();  // its threads call into the broker
  if (auth_http) auth_http->stop();  // its threads post answers to the (stopped) loops
  if (front_admin) front_admin->stop();
  if (own_admin) own_admin->stop();
  spdlog::info("stopped");
  return handed_over && worker ? kExitRetired : kExitOk;
}

// The supervisor's hold on a port its workers will share: refused if another process has
// it (after waiting for one that is exiting: net/port_holder.h), else a bound SO_REUSEPORT
// socket in `reservations`, and `at` gets the port chosen for port 0. Logs why not.
bool reserve_shared_port(Endpoint& at, uint32_t port_wait_ms, const char* who, const char* flag,
                         std::vector<UniqueFd>& reservations) {
  std::string holder;
  if (int busy = net::wait_port_free(at, std::chrono::milliseconds(port_wait_ms), holder); busy != 0) {
    spdlog::critical("{}cannot listen on {}: {}{}", who, at.to_string(), net::errno_text(busy),
                     busy == EADDRINUSE ? fmt::format(" (held by {}; pick another port with {})", holder, flag)
                                        : std::string());
    return false;
  }
  int err = 0;
  UniqueFd reservation = net::reserve_port(at, err);
  if (!reservation) {
    spdlog::critical("{}cannot listen on {}: bind: {}", who, at.to_string(), net::errno_text(err));
    return false;
  }
  if (!at.is_unix()) at.set_port(net::local_endpoint(reservation.get()).port());
  reservations.push_back(std::move(reservation));
  return true;
}

int run(int argc, char** argv) {
  ServerOptions opt;
  config::Settings settings("tcpms-server");
  if (int rc = parse_server_options(argc, argv, opt, settings); rc >= 0) return rc;
  spdlog::set_level(spdlog::level::from_str(opt.log_level));
  if (opt.log_format == "json") spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
  if (opt.upgrade) return signal_upgrade(opt);
  // Resolved now: a new binary installed at this path later is what SIGUSR2 starts.
  StartUp start_up{own_binary_path(), std::vector<std::string>(argv, argv + argc)};

  std::string error;
  std::vector<Listener> listeners;
  const config::SettingBase* listen_setting = settings.find("listen");
  if (!build_listeners(opt, listen_setting && listen_setting->source() != config::Source::kDefault,
                       listeners, error)) {
    std::fprintf(stderr, "tcpms-server: %s\n", error.c_str());
    return kExitUsage;
  }
  std::optional<Endpoint> admin_at;
  if (!opt.no_admin) {
    admin_at = Endpoint::parse(opt.admin_listen, &error);
    if (!admin_at) {
      std::fprintf(stderr, "tcpms-server: --admin-listen: %s\n", error.c_str());
      return kExitUsage;
    }
    if (!admin_at->is_loopback() && opt.admin_token.empty()) {
      std::fprintf(stderr,
                   "tcpms-server: the admin API listens beyond loopback (%s): set --admin-token\n",
                   opt.admin_listen.c_str());
      return kExitUsage;
    }
  }

  // One warning per host shortfall for what each process is configured to hold
  // (tcpms-doctor explains each and can apply the fixes).
  uint64_t per_process =
      static_cast<uint64_t>(opt.max_connections ? opt.max_connections : default_max_connections());
  for (const auto& line : doctor::startup_shortfalls(per_process, doctor::Role::server))
    spdlog::warn("host: {}", line);

  if (!opt.cluster_redis.empty() && opt.processes > 1) {
    std::fprintf(stderr, "tcpms-server: cluster.redis (--cluster) runs one process per node: "
                         "set processes to 1 and run more nodes\n");
    return kExitUsage;
  }
  SignalWatcher signals({SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR2});
  if (opt.processes <= 1)
    return serve(opt, settings, std::move(listeners), admin_at, WorkerRole{}, signals, start_up);

  // Started by a running supervisor's SIGUSR2: its ports and a channel per worker come to us
  // (supervisor_handover.h); the pid file is ours once every worker has taken over.
  std::optional<net::HandoverChannel> predecessor;
  {
    std::string handover_error;
    if (auto fd = handover_socket_from_environment(handover_error)) {
      predecessor.emplace(std::move(*fd));
    } else if (!handover_error.empty()) {
      spdlog::critical("handover: {}", handover_error);
      return kExitUsage;
    }
  }
  std::vector<UniqueFd> reservations;
  SupervisorTaking taking;
  if (predecessor) {
    if (std::string err = take_supervisor(*predecessor, opt.protocol, opt.processes,
                                          opt.upgrade_timeout_ms, listeners, admin_at, taking);
        !err.empty()) {
      spdlog::critical("handover: {}; the running server keeps serving", err);
      return kExitUnavailable;
    }
    reservations = std::move(taking.reservations);
  } else {
    // Worker processes share the ports: pick them (port 0) and check nobody else has them
    // before forking, and keep bound, non-listening SO_REUSEPORT sockets so the ports stay
    // ours while a worker restarts.
    for (auto& l : listeners)
      if (!reserve_shared_port(l.at, opt.port_wait_ms, "", "--listen", reservations)) return kExitUnavailable;
    // The admin port too: worker 0 serves it for every worker, and it stays the server's while
    // worker 0 restarts.
    if (admin_at && !admin_at->is_unix() &&
        !reserve_shared_port(*admin_at, opt.port_wait_ms, "admin API: ", "--admin-listen", reservations))
      return kExitUnavailable;
    write_pid(opt);
  }
  // What a later upgrade hands the next supervisor: the reserved ports, in this order.
  std::vector<std::string> reserved_addresses;
  for (const auto& l : listeners) reserved_addresses.push_back(l.at.to_string());
  if (admin_at && !admin_at->is_unix()) reserved_addresses.push_back(admin_at->to_string());

  WorkerRole role{0, opt.processes, std::to_string(::getpid())};
  // One copy of every worker's interest column, for all of them (routing/interest_region.h).
  std::unique_ptr<routing::InterestRegion> shared_interest;
  if (opt.protocol == "mqtt") {
    std::string why;
    shared_interest = routing::RemoteInterest::shared_region(&why);
    if (!shared_interest) {
      spdlog::critical("supervisor: {}", why);
      return kExitUnavailable;
    }
    role.shared_interest = shared_interest.get();
  }
  workers::SupervisorConfig sup;
  sup.processes = opt.processes;
  sup.stop_timeout = std::chrono::milliseconds(opt.drain_timeout_ms + opt.drain_announce_ms + 10000);
  sup.retired_exit_code = kExitRetired;
  workers::SupervisorUpgrade upgrade;
  upgrade.first_handover_channels = std::move(taking.worker_channels);
  if (predecessor) {
    upgrade.after_first_start = [&] {
      if (wait_for_supervisor_verdict(*predecessor, opt.processes, taking.old_pid)) write_pid(opt);
      predecessor.reset();
    };
  }
  upgrade.on_sigusr2 = [&](std::span<const pid_t> pids, std::span<const int> controls) {
    if (std::string why = handover_unsupported(opt); !why.empty()) {
      spdlog::error("supervisor: SIGUSR2: {}; nothing changed, the workers keep serving", why);
      write_upgrade_refusal(opt.pid_file, why);
      return;
    }
    SupervisorGiverConfig c;
    c.binary = opt.upgrade_binary.empty() ? start_up.binary : opt.upgrade_binary;
    c.argv = start_up.argv;
    c.protocol = opt.protocol;
    c.processes = opt.processes;
    c.timeout_ms = opt.upgrade_timeout_ms;
    for (const auto& r : reservations) c.reservations.push_back(r.get());
    c.addresses = reserved_addresses;
    if (std::string why = hand_workers_over(c, pids, controls); !why.empty())
      write_upgrade_refusal(opt.pid_file, why);
  };
  upgrade.refused = [&](const std::string& why) { write_upgrade_refusal(opt.pid_file, why); };
  return workers::run_supervisor(
      sup,
      [&](unsigned index, workers::WorkerChannels channels) {
        reservations.clear();  // the worker's own listeners hold the ports
        predecessor.reset();   // the supervisors' channel is not the workers'
        WorkerRole mine = role;
        mine.index = index;
        mine.channels = &channels;
        return serve(opt, settings, listeners, admin_at, mine, signals, start_up);
      },
      signals, std::move(upgrade));
}

}  // namespace
}  // namespace tcpms::app

int main(int argc, char** argv) {
  try {
    return tcpms::app::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcpms-server: %s\n", e.what());
    return tcpms::app::kExitSoftware;
  }
}
