// Frames of the upgrade handover (SIGUSR2, docs/upgrade.md): what a running tcpms-server and
// the process replacing it say to each other over their Unix socket, while the listening
// sockets and the established connections travel beside the frames as SCM_RIGHTS descriptors.
//
//   [u32 body length][u8 version][u8 kind][rest of the body]        little endian
//
// The length counts everything after itself. Bodies, by kind (str16 = u16 length + bytes,
// str32 = u32 length + bytes):
//   Hello       (new -> old) u16 lowest version, u16 highest version it speaks, u32 pid
//   Welcome     (old -> new) u16 version chosen, u32 pid, u32 loops, str16 protocol
//   Refuse      (either way) u16 code, str16 reason: the handover stops, the old one serves on
//   Listeners   (old -> new) u32 n, n x (u32 listener index, str16 address); n descriptors
//   Taken       (new -> old) u32 sequence, u32 n, n x u8 (1: taken, 0: not taken)
//   Batch       (old -> new) u32 sequence, u32 n, n x connection; n descriptors
//   Done        (old -> new) u32 connections handed over in all. From version 4 it is sent
//               twice, each answered by Done (new -> old) with the same count: the first
//               asks "do you hold them all, parked?", the second commits; the new process
//               serves what it took only after its second answer
//   State       (old -> new, version 2 on) u32 sequence, u32 n, n x str32 item: protocol
//               state on no connection (MQTT: offline sessions, retained messages), opaque
//               here; answered with Taken of its sequence
//   Workers     (version 3 on) u32 epoch, u32 n, n x u32 worker index; n descriptors: with
//               worker processes, one handover channel per worker (docs/upgrade.md, "Worker
//               processes"): new supervisor -> old supervisor (every worker's), old
//               supervisor -> old worker i (its own); the epoch names the handover (the new
//               supervisor's pid) so marks of an earlier attempt never count
//   connection  u64 old id, u32 handler index, u32 idle timeout ms, u8 flags,
//               str32 unread input, str32 unsent output, str32 protocol state,
//               from version 5: u8 transport (0: none; 1: u16 listener index, u8 has peer,
//               u16 peer family, u16 peer port (network order), 16 bytes peer address,
//               from version 6 then: u8 tls (0: none; 1: tls state), u8 websocket (0: none;
//               1: websocket state))
//   tls state   u8 suite (1-3, tls13::Suite), u8 secret length (32 or 48), for the client's
//               direction then ours: secret, u64 sequence number; str16 certificate
//               identity, str32 a record cut short (at most kMaxPartialRecordBytes)
//   websocket   u64 payload left, 4 bytes mask, u8 mask offset (0-3), u8 flags (1: in a
//               message, 2: in a frame, 4: masked), str16 a frame header or control frame
//               cut short (at most kMaxWebSocketStashBytes)
//
// Listeners answers with Taken (sequence 0), each Batch with Taken of its sequence: only what
// is marked taken has been adopted by the new process; everything else (and everything of a
// batch never answered) the old process resumes serving. Up to version 3 the old process lets
// go of a batch once it is answered. From version 4 it keeps every taken connection parked
// until the commit is answered, and the new process keeps them parked too (not read, not
// written) until it answers: a new process that dies or refuses before then leaves every
// connection with the old one, which resumes them all (a rollback at any point); the old one
// may stop it before the commit, and the new one lets everything go. A decoder refuses a frame of a
// version it does not know before reading its body. Hello and Refuse are therefore always
// encoded as version 1, whatever a build speaks, and never change: a Hello's two versions are
// what two releases negotiate with, and a refusal reaches a release of any age. Every frame
// after the Welcome is in the version it chose.
//
// Thread rules: pure functions and value types; decoded frames own their bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tcpms/bytes.h"

namespace tcpms::net::handover {

// The versions this build speaks. A newer build that adds fields raises kHighestVersion and
// keeps decoding the older ones as long as it can.
inline constexpr uint16_t kLowestVersion = 1;
inline constexpr uint16_t kHighestVersion = 6;  // 2: State; 3: Workers; 4: Done answered;
                                                // 5: a connection's transport;
                                                // 6: its TLS 1.3 records and WebSocket framing
// From this version Done is answered and nothing is served by the new process before.
inline constexpr uint16_t kDoneAnsweredVersion = 4;

// A frame longer than this is refused before it is read: a connection's unsent output is
// bounded by output_hard_limit_bytes (64 MiB by default), and a batch carries several.
inline constexpr uint32_t kMaxFrameBytes = 256u << 20;
inline constexpr size_t kLengthBytes = 4;

enum class Kind : uint8_t {
  kHello = 1,
  kWelcome = 2,
  kRefuse = 3,
  kListeners = 4,
  kTaken = 5,
  kBatch = 6,
  kDone = 7,
  kState = 8,  // version 2 on
  kWorkers = 9,  // version 3 on
};

enum class RefuseCode : uint16_t {
  kVersion = 1,      // no version in common
  kProtocol = 2,     // the new process serves another protocol, or cannot take this one
  kConfig = 3,       // the new process's listeners do not match
  kInternal = 4,     // anything else; the reason says what
};

struct Hello {
  uint16_t lowest = kLowestVersion;
  uint16_t highest = kHighestVersion;
  uint32_t pid = 0;
  bool operator==(const Hello&) const = default;
};
struct Welcome {
  uint16_t version = kHighestVersion;
  uint32_t pid = 0;
  uint32_t loops = 0;
  std::string protocol;
  bool operator==(const Welcome&) const = default;
};
struct Refuse {
  RefuseCode code = RefuseCode::kInternal;
  std::string reason;
  bool operator==(const Refuse&) const = default;
};
struct ListenerEntry {
  uint32_t index = 0;
  std::string address;
  bool operator==(const ListenerEntry&) const = default;
};
struct Listeners {
  std::vector<ListenerEntry> entries;  // one descriptor each, in order
  bool operator==(const Listeners&) const = default;
};
struct Taken {
  uint32_t sequence = 0;
  std::vector<uint8_t> taken;  // per entry of the frame answered: 1 taken, 0 not
  bool operator==(const Taken&) const = default;
};
// A TLS 1.3 connection's record layer once OpenSSL let go of it (version 6 on; see
// net/tls_records.h): per direction the current application traffic secret (key and IV are
// derived from it again) and the sequence number of the next record.
struct TlsDirection {
  std::array<uint8_t, 48> secret{};  // the first TlsState::secret_length bytes count
  uint64_t seq = 0;
  bool operator==(const TlsDirection&) const = default;
};
struct TlsState {
  uint8_t suite = 0;  // tls13::Suite: 1 AES-128-GCM, 2 AES-256-GCM, 3 ChaCha20-Poly1305
  uint8_t secret_length = 0;  // 32 or 48
  TlsDirection read;   // the client's records
  TlsDirection write;  // ours
  std::string identity;  // the client certificate's identity (identity_as_username)
  std::string partial;   // a record the old process had only part of
  bool operator==(const TlsState&) const = default;
};
// A record header plus the largest body TLS 1.3 allows (RFC 8446 section 5.2).
inline constexpr size_t kMaxPartialRecordBytes = 5 + 16384 + 256;

// A WebSocket connection's receiving state past its upgrade (version 6 on): where it is in
// the current frame (websocket/frame.h, ReceiverState) and a frame header or control frame a
// read cut short.
struct WebSocketState {
  uint64_t payload_left = 0;
  std::array<uint8_t, 4> mask{};
  uint8_t mask_offset = 0;  // 0-3
  bool in_message = false;
  bool in_frame = false;
  bool masked = false;
  std::string stash;
  bool operator==(const WebSocketState&) const = default;
};
// A control frame's header (at most 6 bytes, masked) and its 125-byte payload.
inline constexpr size_t kMaxWebSocketStashBytes = 139;

// A connection's transport past its handshakes (version 5 on): the listener it came through
// (the same index in both processes: the same configuration) and the client's address from a
// PROXY header; from version 6, its TLS 1.3 records and WebSocket framing.
struct TransportState {
  uint16_t listener = 0;
  bool has_peer = false;
  uint16_t peer_family = 0;
  uint16_t peer_port = 0;  // network order
  std::array<uint8_t, 16> peer_addr{};
  std::optional<TlsState> tls;              // version 6 on
  std::optional<WebSocketState> websocket;  // version 6 on
  bool operator==(const TransportState&) const = default;
};
inline constexpr uint16_t kTransportVersion = 5;
inline constexpr uint16_t kTlsWebSocketVersion = 6;

struct ConnectionState {
  uint64_t old_id = 0;
  uint32_t handler = 0;  // the handler's index, the same in both processes
  uint32_t idle_timeout_ms = 0;
  uint8_t flags = 0;
  std::string unread_input;   // received and not yet consumed by the protocol (a partial frame)
  std::string unsent_output;  // produced and not yet taken by the kernel
  std::string protocol_state; // the handler's export (Handler::export_state); echo: empty
  std::optional<TransportState> transport;  // version 5 on
  bool operator==(const ConnectionState&) const = default;
};
struct Batch {
  uint32_t sequence = 0;
  std::vector<ConnectionState> connections;  // one descriptor each, in order
  bool operator==(const Batch&) const = default;
};
struct Done {
  uint32_t connections = 0;
  bool operator==(const Done&) const = default;
};

struct State {
  uint32_t sequence = 0;
  std::vector<std::string> items;
  bool operator==(const State&) const = default;
};

// One handover channel per worker process, each a descriptor in the order of `indices`.
struct Workers {
  uint32_t epoch = 0;
  std::vector<uint32_t> indices;
  bool operator==(const Workers&) const = default;
};

using Frame = std::variant<Hello, Welcome, Refuse, Listeners, Taken, Batch, Done, State, Workers>;

// How many descriptors travel with a frame (Listeners, Batch, Workers: one per entry).
size_t descriptors_of(const Frame& frame) noexcept;

// Appends the frame, length first, in `version`'s encoding (Hello and Refuse: always 1).
void encode(const Frame& frame, std::string& out, uint16_t version = kHighestVersion);

// The length a frame's first kLengthBytes announce, or an error when it is too long or too
// short to be a frame.
struct LengthResult {
  uint32_t body_bytes = 0;
  const char* error = nullptr;
};
LengthResult decode_length(ByteView first_bytes);

// Decodes one body (the bytes after the length). `error` is null on success, else a static
// description; a frame of an unknown version or kind, truncated, or with bytes left over is
// an error, never a crash.
struct DecodeResult {
  Frame frame;
  uint16_t version = 0;
  const char* error = nullptr;
  bool ok() const noexcept { return error == nullptr; }
};
DecodeResult decode_body(ByteView body);

// The highest version both sides speak, or 0 when they share none.
uint16_t negotiate(const Hello& hello) noexcept;

}  // namespace tcpms::net::handover
