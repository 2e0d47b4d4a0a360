#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "recmesh/protocol/bridge_mapping.hpp"

namespace recmesh::bridge {

// The SPEC §4.5 mapping of topics a bridge has already mapped, so that a stream on a few
// topics is not parsed and matched again for every message. Only mappings that succeeded are
// kept; it holds at most `capacity` topics and starts over once full, so a source sending
// ever new topics costs memory bounded by the capacity and the largest topic.
class TopicMapCache {
 public:
  struct Entry {
    const protocol::BridgeRule* rule = nullptr;
    std::string target;  // the topic on the other side
  };

  explicit TopicMapCache(std::size_t capacity) : capacity_(capacity) {}

  const Entry* find(std::string_view topic) const;
  const Entry& insert(std::string_view topic, Entry entry);
  std::size_t size() const { return entries_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  std::size_t capacity_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace recmesh::bridge
