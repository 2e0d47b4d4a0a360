// Key declarations and the two renderings of a schema: effective YAML and Markdown reference.
#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "recmesh/config/document.hpp"
#include "recmesh/core/error.hpp"

namespace recmesh::config::detail {
namespace {

bool valid_segment(std::string_view segment) {
  return !segment.empty() && segment.front() >= 'a' && segment.front() <= 'z' &&
         std::all_of(segment.begin(), segment.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

struct TreeNode {
  std::string name;
  const RenderedKey* leaf = nullptr;
  std::vector<std::unique_ptr<TreeNode>> children;

  TreeNode& child(const std::string& child_name) {
    for (auto& existing : children) {
      if (existing->name == child_name) {
        return *existing;
      }
    }
    children.push_back(std::make_unique<TreeNode>());
    children.back()->name = child_name;
    return *children.back();
  }
};

void emit(const TreeNode& node, int depth, std::string& out) {
  for (const auto& child : node.children) {
    out.append(static_cast<std::size_t>(depth) * 2, ' ');
    out += child->name + ":";
    if (child->leaf != nullptr) {
      out += " " + child->leaf->value;
      if (!child->leaf->comment.empty()) {
        out += "  # " + child->leaf->comment;
      }
      out += "\n";
    } else {
      out += "\n";
      emit(*child, depth + 1, out);
    }
  }
}

std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void check_new_key(std::string_view key, const std::vector<std::string>& declared) {
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    if (!valid_segment(key.substr(start, dot - start))) {
      throw Error(
          ErrorCode::kInternal,
          fmt::format("config schema: invalid key '{}' (segments are [a-z][a-z0-9_]*)", key));
    }
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  for (const std::string& other : declared) {
    const bool clash =
        other == key ||
        (other.size() > key.size() && other.starts_with(key) && other[key.size()] == '.') ||
        (key.size() > other.size() && key.starts_with(other) && key[other.size()] == '.');
    if (clash) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("config schema: key '{}' clashes with '{}'", key, other));
    }
  }
}

std::string render_yaml_tree(const std::vector<RenderedKey>& keys) {
  TreeNode root;
  for (const RenderedKey& key : keys) {
    TreeNode* node = &root;
    std::size_t start = 0;
    while (true) {
      const std::size_t dot = key.key.find('.', start);
      node = &node->child(key.key.substr(start, dot - start));
      if (dot == std::string::npos) {
        break;
      }
      start = dot + 1;
    }
    node->leaf = &key;
  }
  std::string out;
  emit(root, 0, out);
  return out;
}

std::string render_markdown_table(const std::vector<KeyDoc>& keys) {
  std::string out =
      "| Key | Type | Default | Allowed | Description |\n"
      "|---|---|---|---|---|\n";
  for (const KeyDoc& key : keys) {
    const std::string default_value =
        key.required ? std::string("*required*") : fmt::format("`{}`", cell(key.default_value));
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", key.key, key.type, default_value,
                       cell(key.allowed), cell(key.doc));
  }
  return out;
}

}  // namespace recmesh::config::detail
