#include "cluster/node_stream.h"

#include <utility>

namespace tcpms::cluster {

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
