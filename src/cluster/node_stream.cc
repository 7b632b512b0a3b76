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
