// Reading a configuration file and checking its shape against the declared keys. The only
// place that knows yaml-cpp; everything after it works on ConfigValue.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "recmesh/config/document.hpp"
#include "recmesh/config/scalars.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::config::detail {
namespace {

// "section.key", or "key" at the top level.
std::string dotted(const std::string& section, const std::string& key) {
  if (section.empty()) {
    return key;
  }
  std::string out;
  out.reserve(section.size() + 1 + key.size());
  out.append(section).append(".").append(key);
  return out;
}

// The declared keys as a tree: which names each section holds.
class KeyIndex {
 public:
  explicit KeyIndex(const std::vector<std::string>& field_keys) {
    children_[""];
    for (const std::string& key : field_keys) {
      fields_.insert(key);
      std::string section;
      std::size_t start = 0;
      while (true) {
        const std::size_t dot = key.find('.', start);
        const std::string name = key.substr(start, dot - start);
        auto& names = children_[section];
        if (std::find(names.begin(), names.end(), name) == names.end()) {
          names.push_back(name);
        }
        if (dot == std::string::npos) {
          break;
        }
        section = key.substr(0, dot);
        children_[section];
        start = dot + 1;
      }
    }
  }

  bool is_field(const std::string& path) const { return fields_.contains(path); }

  const std::vector<std::string>& children(const std::string& section) const {
    return children_.at(section);
  }

  // Every declared path (fields and sections) whose last segment is near `name`, for keys
  // written at the wrong level.
  std::optional<std::string> elsewhere(const std::string& name) const {
    std::vector<std::string> leaves;
    std::vector<std::string> paths;
    for (const auto& [section, names] : children_) {
      for (const std::string& child : names) {
        leaves.push_back(child);
        paths.push_back(dotted(section, child));
      }
    }
    std::optional<std::string> leaf = closest_match(name, leaves);
    if (!leaf) {
      return std::nullopt;
    }
    const auto at = std::find(leaves.begin(), leaves.end(), *leaf);
    return paths[static_cast<std::size_t>(at - leaves.begin())];
  }

 private:
  std::set<std::string> fields_;
  std::map<std::string, std::vector<std::string>> children_;
};

Place place(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

ConfigValue to_value(const YAML::Node& node, Place fallback, bool with_items) {
  ConfigValue value;
  Place at = place(node.Mark());
  if (at.line == 0) {
    at = fallback;
  }
  value.line = at.line;
  value.column = at.column;
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      value.kind = ConfigValue::Kind::kScalar;
      value.text = node.Scalar();
      // Plain scalars carry the non-specific tag "?"; quoted ones and explicit tags do not.
      value.quoted = node.Tag() != "?";
      break;
    case YAML::NodeType::Sequence:
      value.kind = ConfigValue::Kind::kSequence;
      if (with_items) {
        for (auto it = node.begin(); it != node.end(); ++it) {
          const YAML::Node item = *it;
          value.items.push_back(to_value(item, at, false));
        }
      }
      break;
    case YAML::NodeType::Map:
      value.kind = ConfigValue::Kind::kMapping;
      break;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      value.kind = ConfigValue::Kind::kNull;
      break;
  }
  return value;
}

// A key path as shown in problems: as it is when it is a plain name, else quoted and escaped.
std::string display(const std::string& path) {
  const bool plain =
      !path.empty() && path.size() <= 80 && std::all_of(path.begin(), path.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
      });
  return plain ? path : quote_untrusted(path, 80);
}

std::string kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quote_untrusted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

class DocumentReader {
 public:
  DocumentReader(const std::string& file, const KeyIndex& index, std::vector<Problem>& problems,
                 ParsedDocument& document)
      : file_(file), index_(index), problems_(problems), document_(document) {}

  void read_root(const YAML::Node& root) {
    if (root.IsNull()) {
      return;  // an empty file: every key keeps its default
    }
    if (!root.IsMap()) {
      document_.readable = false;
      add(place(root.Mark()), "",
          "the file must be a mapping of keys, got " + kind_of(root) +
              " (allowed here: " + join_alternatives(index_.children("")) + ")");
      return;
    }
    read_mapping(root, "");
  }

 private:
  void add(Place at, std::string key, std::string message) {
    problems_.push_back({file_, at.line, at.column, std::move(key), std::move(message)});
  }

  std::string allowed_here(const std::string& section) const {
    return "allowed here: " + join_alternatives(index_.children(section));
  }

  void read_mapping(const YAML::Node& mapping, const std::string& section) {
    std::map<std::string, int> seen;  // name -> line of its first occurrence
    for (auto it = mapping.begin(); it != mapping.end(); ++it) {
      const YAML::Node key_node = it->first;
      const YAML::Node value_node = it->second;
      const Place key_place = place(key_node.Mark());
      if (!key_node.IsScalar()) {
        add(key_place, section,
            "keys must be plain names, got " + kind_of(key_node) + " (" + allowed_here(section) +
                ")");
        continue;
      }
      const std::string& name = key_node.Scalar();
      const std::string path = dotted(section, name);
      const auto [first, inserted] = seen.emplace(name, key_place.line);
      if (!inserted) {
        add(key_place, display(path),
            fmt::format("duplicate key (first at line {}; each key may appear once)",
                        first->second));
        continue;
      }
      const auto& known = index_.children(section);
      if (name.find('.') != std::string::npos ||
          std::find(known.begin(), known.end(), name) == known.end()) {
        unknown_key(key_place, section, name, path);
        continue;
      }
      document_.places[path] = key_place;
      if (index_.is_field(path)) {
        document_.values[path] = to_value(value_node, key_place, true);
      } else if (value_node.IsMap()) {
        read_mapping(value_node, path);
      } else if (!value_node.IsNull()) {
        const Place value_place = place(value_node.Mark());
        add(value_place.line > 0 ? value_place : key_place, path,
            "expected a mapping, got " + kind_of(value_node) + " (" + allowed_here(path) + ")");
      }
    }
  }

  void unknown_key(Place at, const std::string& section, const std::string& name,
                   const std::string& path) {
    std::string message = "unknown key";
    std::optional<std::string> suggestion;
    if (name.find('.') != std::string::npos) {
      message += " (write nested keys as nested mappings)";
    } else if (auto near = closest_match(name, index_.children(section))) {
      suggestion = section.empty() ? *near : section + "." + *near;
    } else {
      suggestion = index_.elsewhere(name);
    }
    if (suggestion) {
      message += "; did you mean " + *suggestion + "?";
    }
    add(at, display(path), message + " (" + allowed_here(section) + ")");
  }

  const std::string& file_;
  const KeyIndex& index_;
  std::vector<Problem>& problems_;
  ParsedDocument& document_;
};

// Parser events that only note where documents start.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++starts_ == 2) {
      second_start = place(mark);
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  Place second_start;

 private:
  int starts_ = 0;
};

int line_of(std::string_view text, std::size_t offset) {
  return static_cast<int>(
             std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n')) +
         1;
}

}  // namespace

ParsedDocument read_document(std::string_view text, const std::string& file,
                             const std::vector<std::string>& field_keys,
                             std::vector<Problem>& problems) {
  ParsedDocument document;
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    problems.push_back(
        {file, line_of(text, nul), 0, "", "holds a NUL byte; a configuration file is YAML text"});
    document.readable = false;
    return document;
  }
  try {
    const KeyIndex index(field_keys);
    const std::string input(text);
    // YAML::LoadAll loops forever, allocating, on some malformed inputs (it keeps asking for the
    // next document while the parser no longer advances), so documents are counted with a
    // bounded number of calls and only the first one is loaded.
    DocumentCounter counter;
    std::istringstream stream(input);
    YAML::Parser parser(stream);
    int documents = 0;
    while (documents < 2 && parser.HandleNextDocument(counter)) {
      ++documents;
    }
    if (documents > 1) {
      problems.push_back({file, counter.second_start.line, counter.second_start.column, "",
                          "holds more than one YAML document; a configuration file holds one"});
      document.readable = false;
      return document;
    }
    DocumentReader(file, index, problems, document).read_root(YAML::Load(input));
  } catch (const YAML::DeepRecursion& e) {
    const Place at = place(e.mark);
    problems.push_back({file, at.line, at.column, "",
                        fmt::format("malformed YAML: nested deeper than {} levels", e.depth())});
    document.readable = false;
  } catch (const YAML::Exception& e) {
    const Place at = place(e.mark);
    problems.push_back({file, at.line, at.column, "", "malformed YAML: " + e.msg});
    document.readable = false;
  } catch (const std::exception& e) {
    problems.push_back({file, 0, 0, "", std::string("cannot be parsed: ") + e.what()});
    document.readable = false;
  }
  return document;
}

std::optional<std::string> read_config_file(const std::filesystem::path& path,
                                            std::vector<Problem>& problems) {
  const std::string file = path.string();
  const auto fail = [&](const std::string& message) {
    problems.push_back({file, 0, 0, "", message});
    return std::nullopt;
  };
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not regular.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return fail(std::string("cannot open the configuration file: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("the configuration file is not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxConfigFileSize) {
    ::close(fd);
    return fail(
        fmt::format("the configuration file is larger than {} bytes (1 MiB)", kMaxConfigFileSize));
  }
  std::string text;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return fail(std::string("cannot read the configuration file: ") + std::strerror(saved));
    }
    if (n == 0) {
      break;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    // The file may grow between fstat and read.
    if (text.size() > kMaxConfigFileSize) {
      ::close(fd);
      return fail(fmt::format("the configuration file is larger than {} bytes (1 MiB)",
                              kMaxConfigFileSize));
    }
  }
  ::close(fd);
  return text;
}

Place place_of(const ParsedDocument& document, std::string_view key) {
  std::string path(key);
  while (!path.empty()) {
    if (auto found = document.places.find(path); found != document.places.end()) {
      return found->second;
    }
    const std::size_t dot = path.rfind('.');
    path = dot == std::string::npos ? std::string() : path.substr(0, dot);
  }
  return {};
}

void sort_problems(std::vector<Problem>& problems) {
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
    const auto rank = [](const Problem& p) {
      return std::make_tuple(p.line == 0, p.line, p.column);
    };
    return rank(a) < rank(b);
  });
}

}  // namespace recmesh::config::detail
