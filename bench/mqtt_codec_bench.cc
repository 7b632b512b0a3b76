// MQTT codec micro-benchmarks. Run: build/<dir>/bin/mqtt_codec_bench
// Numbers are per packet / per topic; bytes_per_second counts whole packets.
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <vector>

#include "mqtt/codec.h"

namespace {

using namespace tcpms::mqtt;

std::vector<std::byte> make_publish(ProtocolVersion v, std::size_t payload_size, QoS qos) {
  const std::vector<std::byte> payload(payload_size, std::byte{'x'});
  std::array<std::byte, 16> prop_buf;
  PropertyBuilder props(prop_buf);
  props.add(PropertyId::kMessageExpiryInterval, 60);
  Publish p;
  p.topic = "sensors/building-7/floor-3/room-12/temperature";
  p.qos = qos;
  p.packet_id = qos == QoS::k0 ? 0 : 42;
  p.payload = payload;
  if (is_v5(v)) p.properties = props.properties();
  std::vector<std::byte> out(encoded_size(p, v));
  encode(p, v, out);
  return out;
}

// Framing + body decode of one PUBLISH: what the broker runs per inbound message.
void BM_DecodePublish(benchmark::State& state) {
  const auto v = static_cast<ProtocolVersion>(state.range(0));
  const auto wire = make_publish(v, static_cast<std::size_t>(state.range(1)), QoS::k1);
  for (auto _ : state) {
    const FrameResult f = next_frame(wire, 0);
    auto d = decode_publish(f.header.flags, f.body, v);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_DecodePublish)->ArgsProduct({{4, 5}, {16, 1024}})->ArgNames({"ver", "payload"});

// A read buffer full of back-to-back QoS 0 PUBLISHes, decoded in place.
void BM_DecodePublishStream(benchmark::State& state) {
  const auto one = make_publish(ProtocolVersion::kV311, 64, QoS::k0);
  std::vector<std::byte> stream;
  for (int i = 0; i < 512; ++i) stream.insert(stream.end(), one.begin(), one.end());
  for (auto _ : state) {
    Bytes rest = stream;
    std::size_t n = 0;
    while (true) {
      const FrameResult f = next_frame(rest, 0);
      if (f.status != FrameStatus::kComplete) break;
      auto d = decode_publish(f.header.flags, f.body, ProtocolVersion::kV311);
      benchmark::DoNotOptimize(d);
      rest = rest.subspan(f.header.packet_size());
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * 512);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_DecodePublishStream);

// The per-subscriber part of fan-out: header written, payload sent by reference.
void BM_EncodePublishHeader(benchmark::State& state) {
  const auto v = static_cast<ProtocolVersion>(state.range(0));
  const std::vector<std::byte> payload(1024, std::byte{'x'});
  std::array<std::byte, 8> prop_buf;
  PropertyBuilder props(prop_buf);
  props.add(PropertyId::kSubscriptionIdentifier, 12);
  Publish p;
  p.topic = "sensors/building-7/floor-3/room-12/temperature";
  p.qos = QoS::k1;
  p.payload = payload;
  if (is_v5(v)) p.properties = props.properties();
  std::array<std::byte, 128> out;
  std::uint16_t id = 1;
  for (auto _ : state) {
    p.packet_id = id == 0 ? ++id : id++;  // never 0 [MQTT-2.3.1-1]
    benchmark::DoNotOptimize(encode_publish_header(p, v, out));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodePublishHeader)->Arg(4)->Arg(5)->ArgName("ver");

const std::string kShortTopic = "sensors/room-12/temp";
const std::string kLongTopic = [] {
  std::string s;
  for (int i = 0; i < 20; ++i) s += "level-" + std::to_string(i) + "/";
  return s + "leaf";
}();

void BM_ValidateTopicName(benchmark::State& state) {
  const std::string& t = state.range(0) == 0 ? kShortTopic : kLongTopic;
  for (auto _ : state) {
    benchmark::DoNotOptimize(validate_utf8(t));
    benchmark::DoNotOptimize(validate_topic_name(t));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t.size()));
}
BENCHMARK(BM_ValidateTopicName)->Arg(0)->Arg(1)->ArgName("long");

void BM_ValidateTopicFilter(benchmark::State& state) {
  const std::string filter = "sensors/+/floor-3/+/temperature/#";
  for (auto _ : state) benchmark::DoNotOptimize(validate_topic_filter(filter));
}
BENCHMARK(BM_ValidateTopicFilter);

void BM_TopicMatches(benchmark::State& state) {
  const std::string filter = "sensors/+/floor-3/+/temperature";
  const std::string name = "sensors/building-7/floor-3/room-12/temperature";
  for (auto _ : state) benchmark::DoNotOptimize(topic_matches(filter, name));
}
BENCHMARK(BM_TopicMatches);

}  // namespace

BENCHMARK_MAIN();
