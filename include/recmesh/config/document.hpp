#pragma once

// The parts of configuration loading that do not depend on the settings type: reading the file,
// parsing YAML and checking its shape against the declared keys, and rendering. Schema<T> uses
// them; daemons do not need to.

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recmesh/config/config_value.hpp"
#include "recmesh/config/problem.hpp"

namespace recmesh::config {

// Larger configuration files are refused before they are parsed.
inline constexpr std::size_t kMaxConfigFileSize = std::size_t{1} << 20;

// One key of a schema, as the reference documentation shows it.
struct KeyDoc {
  std::string key;            // dotted path
  std::string type;           // "integer", "duration", ...
  std::string default_value;  // as YAML; empty when the key is required
  std::string allowed;        // "1..65535", "one of human or json", ...
  std::string doc;            // one line
  bool required = false;
};

namespace detail {

struct Place {
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
};

// What a file holds for the declared keys.
struct ParsedDocument {
  // False when the file as a whole is unusable (malformed YAML, not a mapping, several
  // documents): its keys are then not checked one by one.
  bool readable = true;
  std::map<std::string, ConfigValue> values;  // field key -> its value
  std::map<std::string, Place> places;        // every key present (fields and sections)
};

// Parses `text` as one YAML document and checks its shape against `field_keys` (dotted paths):
// unknown keys (with the nearest known key), duplicate keys, sections that are not mappings,
// malformed YAML, nesting too deep. Appends to `problems`; never throws.
ParsedDocument read_document(std::string_view text, const std::string& file,
                             const std::vector<std::string>& field_keys,
                             std::vector<Problem>& problems);

// The whole file, if it is a readable regular file of at most kMaxConfigFileSize bytes;
// otherwise nothing and a problem. Never throws.
std::optional<std::string> read_config_file(const std::filesystem::path& path,
                                            std::vector<Problem>& problems);

// Where `key` is written in the file, else where its nearest enclosing section is, else {0, 0}.
Place place_of(const ParsedDocument& document, std::string_view key);

// Orders problems by their place in the file; problems without a place go last.
void sort_problems(std::vector<Problem>& problems);

// Throws Error(kInternal) when `key` is not a valid dotted key ([a-z][a-z0-9_]* segments) or
// clashes with a declared key (the same key, or one is a section of the other).
void check_new_key(std::string_view key, const std::vector<std::string>& declared);

struct RenderedKey {
  std::string key;
  std::string value;    // YAML text
  std::string comment;  // shown after the value; empty for none
};

// Nested YAML with the keys grouped by section in order of first appearance.
std::string render_yaml_tree(const std::vector<RenderedKey>& keys);

// A Markdown table: key, type, default, allowed values, description.
std::string render_markdown_table(const std::vector<KeyDoc>& keys);

}  // namespace detail
}  // namespace recmesh::config
