#include "cluster/node_stream.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace tcpms::cluster {
namespace {

std::pair<uint64_t, uint64_t> parse_id(std::string_view id) {
  uint64_t ms = 0, seq = 0;
  const size_t dash = id.find('-');
  std::from_chars(id.data(), id.data() + std::min(dash, id.size()), ms);
  if (dash != std::string_view::npos) std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  return {ms, seq};
}

}  // namespace

bool stream_id_less(std::string_view a, std::string_view b) { return parse_id(a) < parse_id(b); }

uint64_t stream_id_ms(std::string_view id) { return parse_id(id).first; }

namespace {

template <typename T>
bool parse_decimal(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::optional<StreamEntry> parse_entry(const std::vector<std::string_view>& fields, uint32_t slots) {
  StreamEntry e;
  std::string_view seq, slot, control;
  bool has_frame = false, has_control = false;
  for (size_t k = 0; k + 1 < fields.size(); k += 2) {
    const std::string_view name = fields[k], value = fields[k + 1];
    if (name == "s") e.sender = value;
    else if (name == "n") seq = value;
    else if (name == "p") slot = value;
    else if (name == "f") { e.frame = value; has_frame = true; }
    else if (name == "c") { control = value; has_control = true; }
  }
  uint32_t s = 0;
  if (e.sender.empty() || e.sender.rfind('/') == std::string_view::npos || e.sender.rfind('/') == 0 ||
      !parse_decimal(seq, e.seq) || !parse_decimal(slot, s) || s >= slots || has_frame == has_control)
    return std::nullopt;
  if (has_control && control != "up") return std::nullopt;  // a newer sender's word
  e.slot = static_cast<uint16_t>(s);
  e.up = has_control;
  return e;
}

std::optional<NodeValue> parse_node_value(std::string_view v, uint32_t slots) {
  const size_t space = v.find(' ');
  if (space == std::string_view::npos || space + 1 >= v.size()) return std::nullopt;
  uint32_t s = 0;
  if (!parse_decimal(v.substr(0, space), s) || s >= slots) return std::nullopt;
  return NodeValue{static_cast<uint16_t>(s), v.substr(space + 1)};
}

bool DuplicateFilter::accept(std::string_view sender, uint64_t seq) {
  auto it = last_.find(std::string(sender));
  if (it == last_.end()) {
    last_.emplace(std::string(sender), seq);
    return true;
  }
  if (seq <= it->second) return false;
  it->second = seq;
  return true;
}

size_t Outbox::trim() {
  size_t dropped = 0;
  while (items_.size() > capacity_) {
    items_.pop_front();
    ++dropped;
  }
  return dropped;
}

size_t Outbox::push(Item item) {
  items_.push_back(std::move(item));
  return trim();
}

std::deque<Outbox::Item> Outbox::take(size_t max) {
  std::deque<Item> out;
  while (!items_.empty() && out.size() < max) {
    out.push_back(std::move(items_.front()));
    items_.pop_front();
  }
  return out;
}

size_t Outbox::put_back(std::deque<Item> items) {
  while (!items.empty()) {
    items_.push_front(std::move(items.back()));
    items.pop_back();
  }
  return trim();
}

}  // namespace tcpms::cluster
