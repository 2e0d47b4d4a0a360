#include "topic_levels.hpp"

namespace recmesh::protocol {

std::vector<std::string_view> split_levels(std::string_view text) {
  std::vector<std::string_view> levels;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(text.substr(start));
      return levels;
    }
    levels.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

std::optional<std::vector<std::string_view>> capture_wildcards(std::string_view filter,
                                                               std::string_view name) {
  auto f = split_levels(filter);
  auto n = split_levels(name);
  std::vector<std::string_view> captures;
  std::size_t i = 0;
  for (; i < f.size(); ++i) {
    if (f[i] == "#") {
      if (i < n.size()) {
        auto offset = static_cast<std::size_t>(n[i].data() - name.data());
        captures.push_back(name.substr(offset));
      } else {
        captures.emplace_back();
      }
      return captures;
    }
    if (i >= n.size()) {
      return std::nullopt;
    }
    if (f[i] == "+") {
      captures.push_back(n[i]);
    } else if (f[i] != n[i]) {
      return std::nullopt;
    }
  }
  if (i != n.size()) {
    return std::nullopt;
  }
  return captures;
}

std::string fill_member(std::string_view pattern, std::string_view rec, std::string_view member) {
  std::string out;
  auto levels = split_levels(pattern);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    if (levels[i] == "<rec>") {
      out += rec;
    } else if (levels[i] == "<member>") {
      out += member;
    } else {
      out += levels[i];
    }
  }
  return out;
}

std::optional<std::string> fill_pattern(std::string_view pattern, std::string_view rec,
                                        std::string_view member,
                                        std::span<const std::string_view> captures) {
  std::string out;
  std::size_t next = 0;
  auto levels = split_levels(pattern);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    auto level = levels[i];
    if (level == "<rec>") {
      out += rec;
    } else if (level == "<member>") {
      out += member;
    } else if (level == "+" || level == "#") {
      if (next == captures.size()) {
        return std::nullopt;
      }
      out += captures[next++];
    } else {
      out += level;
    }
  }
  if (next != captures.size()) {
    return std::nullopt;
  }
  return out;
}

}  // namespace recmesh::protocol
