#pragma once

// The one way every recmesh daemon reads its configuration.
//
// A daemon writes a settings struct whose members carry their defaults, and declares once, per
// member, its YAML key, a one-line description and its constraints:
//
//   struct GatewaySettings {
//     std::chrono::milliseconds publish_interval{5000};  // how often readings are published
//     config::TlsClientSettings broker;                   // the local broker, over mTLS
//   };
//   config::Schema<GatewaySettings> gateway_schema() {
//     config::Schema<GatewaySettings> s;
//     s.field("publish_interval", &GatewaySettings::publish_interval,
//             "How often readings are published").range(100ms, 1h);
//     s.block("broker", &GatewaySettings::broker, config::tls_client_schema());
//     return s;
//   }
//
// From that declaration the schema loads a YAML file (rejecting unknown keys, wrong types and
// out-of-range values, reporting every problem with file, line, key and what is allowed), runs
// cross-field validate() rules, prints the effective configuration and writes the Markdown
// reference of every key, so the documentation cannot drift from the code.

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "recmesh/config/config_value.hpp"
#include "recmesh/config/document.hpp"
#include "recmesh/config/field.hpp"
#include "recmesh/config/problem.hpp"

namespace recmesh::config {

template <typename T>
struct LoadResult {
  T settings{};                        // defaults, overridden by every valid value in the file
  std::vector<Problem> problems;       // empty when the configuration is usable
  std::set<std::string> keys_in_file;  // keys whose value came from the file
  bool ok() const { return problems.empty(); }
};

template <typename T>
class Schema {
  static_assert(std::is_default_constructible_v<T>, "settings take their defaults from T{}");

 public:
  using Rule = std::function<void(const T&, Validation&)>;

  // Declares member `member` under the dotted `key` ("tls.cafile" is key cafile in mapping
  // tls). Its default is what T{} holds.
  template <detail::SettingType V>
  requires(!std::is_enum_v<V>) FieldBuilder<V> field(std::string key, V T::*member,
                                                     std::string doc) {
    return add_field(std::move(key), member, std::move(doc), {});
  }

  // An enumeration, written in the file as one of `names`.
  template <typename E>
  requires std::is_enum_v<E> FieldBuilder<E> field(std::string key, E T::*member, std::string doc,
                                                   std::vector<std::pair<std::string, E>> names) {
    return add_field(std::move(key), member, std::move(doc), std::move(names));
  }

  // Declares every key of `inner` under `prefix` for the member block `member`; the block's
  // validate() rules come along.
  template <typename B>
  void block(const std::string& prefix, B T::*member, const Schema<B>& inner) {
    for (const auto& entry : inner.entries_) {
      std::string key = prefix + "." + entry.key;
      detail::check_new_key(key, keys());
      entries_.push_back({std::move(key), entry.doc,
                          std::make_shared<detail::NestedField<T, B>>(member, entry.field)});
    }
    for (const auto& rule : inner.rules_) {
      rules_.push_back([member, rule, prefix](const T& settings, Validation& validation) {
        Validation nested = validation.within(prefix);
        rule(settings.*member, nested);
      });
    }
  }

  // A cross-field rule, run after every field parsed and passed its own constraints.
  void validate(Rule rule) { rules_.push_back(std::move(rule)); }

  // Reads and checks a YAML file; relative paths in it are taken relative to its directory.
  LoadResult<T> load_file(const std::filesystem::path& path) const {
    LoadResult<T> result;
    std::optional<std::string> text = detail::read_config_file(path, result.problems);
    if (!text) {
      return result;
    }
    std::error_code ignored;
    const std::filesystem::path absolute = std::filesystem::absolute(path, ignored);
    return load_text(*text, path.string(), absolute.parent_path());
  }

  // Checks YAML text as if read from `file_name`.
  LoadResult<T> load_text(std::string_view text, const std::string& file_name,
                          const std::filesystem::path& base_dir = {}) const {
    LoadResult<T> result;
    const detail::ParsedDocument document =
        detail::read_document(text, file_name, keys(), result.problems);
    apply(document, file_name, ParseContext{base_dir}, result);
    return result;
  }

  // The defaults alone, checked as a file without keys would be.
  LoadResult<T> load_defaults(const std::string& origin = "(defaults)") const {
    LoadResult<T> result;
    apply(detail::ParsedDocument{}, origin, ParseContext{}, result);
    return result;
  }

  // load_file(), throwing Error(kInvalidArgument) that lists every problem.
  T load_file_or_throw(const std::filesystem::path& path) const {
    LoadResult<T> result = load_file(path);
    if (!result.ok()) {
      throw to_error(result.problems);
    }
    return std::move(result.settings);
  }

  // Field constraints and validate() rules applied to settings built in code.
  std::vector<Problem> check(const T& settings, const std::string& origin = "(settings)") const {
    std::vector<Problem> problems;
    for (const auto& entry : entries_) {
      const std::string error = entry.field->check(settings);
      if (!error.empty()) {
        problems.push_back({origin, 0, 0, entry.key, with_allowed(error, entry)});
      }
    }
    if (problems.empty()) {
      run_rules(settings, detail::ParsedDocument{}, origin, problems);
    }
    return problems;
  }

  // The settings as a YAML file that loads back to the same settings. With `keys_in_file`,
  // values that are defaults carry the comment "default".
  std::string render_yaml(const T& settings,
                          const std::set<std::string>* keys_in_file = nullptr) const {
    std::vector<detail::RenderedKey> keys;
    for (const auto& entry : entries_) {
      const bool is_default = keys_in_file != nullptr && !keys_in_file->contains(entry.key);
      keys.push_back({entry.key, entry.field->render(settings), is_default ? "default" : ""});
    }
    return detail::render_yaml_tree(keys);
  }

  // Every key with its type, default, allowed values and description; `prefix` is put in front
  // of each key (for blocks documented on their own).
  std::vector<KeyDoc> key_docs(const std::string& prefix = {}) const {
    const T defaults{};
    std::vector<KeyDoc> out;
    for (const auto& entry : entries_) {
      const bool required = entry.field->required();
      out.push_back({prefix + entry.key, entry.field->type_name(),
                     required ? "" : entry.field->render(defaults), entry.field->allowed(),
                     entry.doc, required});
    }
    return out;
  }

  // The reference table of key_docs() in Markdown.
  std::string render_markdown(const std::string& prefix = {}) const {
    return detail::render_markdown_table(key_docs(prefix));
  }

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& entry : entries_) {
      out.push_back(entry.key);
    }
    return out;
  }

  bool has_key(std::string_view key) const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const auto& entry) { return entry.key == key; });
  }

 private:
  template <typename U>
  friend class Schema;

  struct Entry {
    std::string key;
    std::string doc;
    std::shared_ptr<const detail::FieldBase<T>> field;
  };

  template <typename V>
  FieldBuilder<V> add_field(std::string key, V T::*member, std::string doc,
                            std::vector<std::pair<std::string, V>> names) {
    detail::check_new_key(key, keys());
    auto spec = std::make_shared<FieldSpec<V>>();
    spec->names = std::move(names);
    entries_.push_back(
        {key, std::move(doc), std::make_shared<detail::TypedField<T, V>>(member, spec)});
    return FieldBuilder<V>(std::move(spec), std::move(key));
  }

  static std::string with_allowed(const std::string& error, const Entry& entry) {
    return error + " (allowed: " + entry.field->allowed() + ")";
  }

  void apply(const detail::ParsedDocument& document, const std::string& file,
             const ParseContext& context, LoadResult<T>& result) const {
    if (!document.readable) {
      return;  // key by key checks of an unreadable file would only add noise
    }
    for (const auto& entry : entries_) {
      const auto found = document.values.find(entry.key);
      if (found != document.values.end()) {
        const ConfigValue& value = found->second;
        const std::string error = entry.field->parse(value, context, result.settings);
        if (error.empty()) {
          result.keys_in_file.insert(entry.key);
        } else {
          result.problems.push_back(
              {file, value.line, value.column, entry.key, with_allowed(error, entry)});
        }
        continue;
      }
      const detail::Place place = detail::place_of(document, entry.key);
      if (entry.field->required()) {
        result.problems.push_back({file, place.line, place.column, entry.key,
                                   with_allowed("is required but not set", entry)});
        continue;
      }
      const std::string error = entry.field->check(result.settings);
      if (!error.empty()) {
        result.problems.push_back({file, place.line, place.column, entry.key,
                                   with_allowed("the default " + error, entry)});
      }
    }
    if (result.problems.empty()) {
      run_rules(result.settings, document, file, result.problems);
    }
    detail::sort_problems(result.problems);
  }

  void run_rules(const T& settings, const detail::ParsedDocument& document, const std::string& file,
                 std::vector<Problem>& problems) const {
    Validation::Findings findings;
    Validation validation(findings);
    for (const auto& rule : rules_) {
      rule(settings, validation);
    }
    for (auto& [key, message] : findings) {
      const detail::Place place = detail::place_of(document, key);
      problems.push_back({file, place.line, place.column, key, std::move(message)});
    }
  }

  std::vector<Entry> entries_;
  std::vector<Rule> rules_;
};

}  // namespace recmesh::config
