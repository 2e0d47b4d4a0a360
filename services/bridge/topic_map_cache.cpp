#include "bridge/topic_map_cache.hpp"

#include <utility>

namespace recmesh::bridge {

const TopicMapCache::Entry* TopicMapCache::find(std::string_view topic) const {
  const auto it = entries_.find(topic);
  return it == entries_.end() ? nullptr : &it->second;
}

const TopicMapCache::Entry& TopicMapCache::insert(std::string_view topic, Entry entry) {
  if (entries_.size() >= capacity_) {
    entries_.clear();
  }
  return entries_.insert_or_assign(std::string(topic), std::move(entry)).first->second;
}

}  // namespace recmesh::bridge
