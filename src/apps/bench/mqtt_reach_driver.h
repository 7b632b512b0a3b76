// mqtt-reach: N MQTT clients, each subscribed to a topic of its own, then one message to every
// one of them by publishing to its topic, then one message to a random K of them pushed by
// client id through the server's admin API; every message is checked as delivered exactly once
// to the right client. The driver of one event loop (see docs/bench.md, "mqtt-reach").
//
// Client i of the run (global number) connects as client_id(run, "-", i) (clean session, or
// a persistent one with --persistent; keep-alive --keep-alive, default none) and subscribes
// to reach_topic(that id) at --qos.
// Each loop also opens one control connection (the rendezvous below) and --publishers
// publisher connections, which publish the messages for that loop's own clients.
//
// Stages, each loop on its own, meeting the other loops (in every bench process) through the
// broker: every control connection subscribes to tb/<run>/sync/# at QoS 1, and a loop reports
// by a retained QoS 1 message on tb/<run>/sync/<stage>/<its first client number>; a loop goes
// on once the reports it has seen cover all N clients. No process talks to another directly.
//   1. subscribe: connect and subscribe every client; then report "ready" (its client count).
//  1b. stream (only with --stream-during CMD): once the "ready" reports cover N, the loop's
//      publishers send QoS 1 messages round robin to the loop's own clients (at most
//      --inflight unacknowledged each, paced by --stream-rate or as fast as that allows), each
//      stamped with its send time. After --stream-after seconds the loop holding client 0 runs
//      `sh -c CMD` (CommandRunner: a thread waits for it, the loop streams on) and, once it
//      returns, reports "upgraded" (its exit code). Each loop streams on for --stream-tail
//      seconds after it sees that report, stops, and waits until every message the broker
//      acknowledged has reached its client (or nothing came for --drain seconds): a message
//      acknowledged and never delivered is lost (StreamLedger keeps the loop's accounts, so no
//      loop needs another's). Then it reports "streamed"; once those cover N, stage 2 begins.
//      Any connection the server closes or resets, at any stage, counts as a disconnect: the
//      bench never reconnects.
//   2. publish: once the "ready" reports (after a stream stage: the "streamed" ones) cover N,
//      publish one message to each of its clients that is subscribed (paced by
//      --publish-rate, or as fast as the sockets take them). A client checks the topic, every
//      payload byte, that the payload names it, and that it sees the message once. When every
//      client has it, or nothing came for --drain seconds, the missing ones are counted and the
//      loop reports "got" (reach_plan.h ReachReport).
//   3. push: once the "got" reports cover N, the loop holding client 0 pushes to the K clients
//      of choose_push_targets(run, N, K) with POST /api/v1/clients/{id}/send (AdminPusher),
//      then reports "pushed". Each loop knows which of its clients expect a push; it finishes
//      once they all have it, or --drain seconds after "pushed" with the missing counted.
// The loop holding client 0 also samples the server's CPU (--server-pid) at each stage
// boundary, so each stage's cost is charged to its own operations. Each loop clears its
// retained reports when it finishes. A wait at a rendezvous gives up after --sync-timeout.
//
// Threads: the loop's thread only (AdminPusher's and CommandRunner's threads post back to it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "workload.h"

namespace tcpms::benchapp {

struct ReachOptions {
  int qos = 0;                   // SUBSCRIBE, PUBLISH and push QoS (0 or 1)
  uint16_t keep_alive_s = 0;     // in CONNECT; > 0 sends PINGREQ every keep_alive / 2
  uint32_t publishers = 2;       // publisher connections per event loop
  double publish_rate = 0;       // PUBLISH per second over the run; 0: as fast as flow allows
  uint32_t inflight = 100;       // QoS 1: unacknowledged PUBLISH per publisher
  uint32_t payload = 64;         // message size in bytes (mqtt_payload.h format)
  double drain_s = 10;           // give up on a missing message after this long of silence
  double sync_timeout_s = 120;   // give up waiting at a rendezvous after this long
  uint64_t pushes = 10000;       // K: clients the admin API pushes to (0: none)
  uint64_t max_logins = 0;       // clients between connect and SUBACK at once, whole run (0: no cap)
  bool persistent = false;       // clients CONNECT with CleanSession 0 (publishers stay clean)
  std::string admin;             // HOST:PORT of the admin API
  std::string admin_token;
  int push_concurrency = 4;      // admin requests in flight
  // The stream stage (above): the command run while every loop streams (empty: no stage).
  std::string stream_during;
  double stream_after_s = 2;     // streaming before the command starts
  double stream_tail_s = 2;      // streaming after the command returned
  double stream_rate = 0;        // stream PUBLISH per second over the run; 0: as --inflight allows
};

// The run id every process of one run agrees on (the parent bench process's pid).
uint32_t reach_run_id(const CommonOptions& c);

std::unique_ptr<LoopDriver> make_reach_driver(const DriverContext& ctx, const ReachOptions& o);

}  // namespace tcpms::benchapp
