#pragma once

// The typed fields of a configuration schema: what a field may hold (FieldSpec), how its values
// are converted, checked and printed, and the builder a declaration uses to add constraints.
// Daemons use this through Schema<T>::field() (recmesh/config/schema.hpp).

#include <algorithm>
#include <chrono>
#include <concepts>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <ratio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "recmesh/config/byte_size.hpp"
#include "recmesh/config/config_value.hpp"
#include "recmesh/config/scalars.hpp"
#include "recmesh/core/error.hpp"

namespace recmesh::config {

enum class PathCheck {
  kNone,
  kExistingFile,       // a regular file (after following symbolic links)
  kExistingDirectory,  // a directory
};

// Constraints of one field; which members apply depends on the value type V.
template <typename V>
struct FieldSpec {
  bool required = false;   // the key must be in the file (the default is never used)
  bool non_empty = false;  // strings, paths and lists
  std::optional<V> min;    // numbers, durations and byte sizes
  std::optional<V> max;
  std::vector<std::string> choices;              // strings: the values allowed
  std::vector<std::pair<std::string, V>> names;  // enumerations: the name of each value
  PathCheck path_check = PathCheck::kNone;       // paths; an empty path is not checked
};

namespace detail {

template <typename V>
inline constexpr bool kIsDuration = false;
template <typename Rep, typename Period>
inline constexpr bool kIsDuration<std::chrono::duration<Rep, Period>> = true;

template <typename V>
concept Integer = std::integral<V> && !std::same_as<V, bool> && !std::same_as<V, char>;

template <typename V>
concept Ordered =
    Integer<V> || std::floating_point<V> || kIsDuration<V> || std::same_as<V, ByteSize>;

template <typename V>
concept Textual = std::same_as<V, std::string> || std::same_as<V, std::filesystem::path>;

template <typename V>
concept SettingType = std::same_as<V, bool> || Ordered<V> || Textual<V> ||
    std::same_as<V, std::vector<std::string>> || std::is_enum_v<V>;

// Non-template parts, in src/config/field_values.cpp. Each returns an error fragment or "".
std::string check_path(const std::filesystem::path& path, PathCheck check);
std::optional<std::string> convert_text(const ConfigValue& value, std::string& error);
std::string render_string_list(const std::vector<std::string>& items);
std::string not_allowed(std::string_view value, const std::vector<std::string>& allowed);
std::string expected(std::string_view what, const ConfigValue& value);

template <typename V>
std::string type_name() {
  if constexpr (std::same_as<V, bool>) {
    return "boolean";
  } else if constexpr (Integer<V>) {
    return "integer";
  } else if constexpr (std::floating_point<V>) {
    return "number";
  } else if constexpr (kIsDuration<V>) {
    return "duration";
  } else if constexpr (std::same_as<V, ByteSize>) {
    return "byte size";
  } else if constexpr (std::same_as<V, std::string>) {
    return "string";
  } else if constexpr (std::same_as<V, std::filesystem::path>) {
    return "path";
  } else if constexpr (std::same_as<V, std::vector<std::string>>) {
    return "list of strings";
  } else {
    return "enumeration";
  }
}

template <typename V>
std::vector<std::string> names_of(const FieldSpec<V>& spec) {
  std::vector<std::string> out;
  for (const auto& [name, value] : spec.names) {
    out.push_back(name);
  }
  return out;
}

template <typename V>
std::string render(const V& value, const FieldSpec<V>& spec) {
  if constexpr (std::same_as<V, bool>) {
    return value ? "true" : "false";
  } else if constexpr (Integer<V>) {
    return std::to_string(value);
  } else if constexpr (std::floating_point<V>) {
    return format_number(static_cast<double>(value));
  } else if constexpr (kIsDuration<V>) {
    return format_duration_ms(std::chrono::duration_cast<std::chrono::milliseconds>(value).count());
  } else if constexpr (std::same_as<V, ByteSize>) {
    return format_byte_size(value.bytes);
  } else if constexpr (std::same_as<V, std::string>) {
    return yaml_quote(value);
  } else if constexpr (std::same_as<V, std::filesystem::path>) {
    return yaml_quote(value.string());
  } else if constexpr (std::same_as<V, std::vector<std::string>>) {
    return render_string_list(value);
  } else {
    for (const auto& [name, known] : spec.names) {
      if (known == value) {
        return name;
      }
    }
    return yaml_quote("(unnamed value)");
  }
}

template <typename V>
std::string allowed(const FieldSpec<V>& spec) {
  if constexpr (std::same_as<V, bool>) {
    return "true or false";
  } else if constexpr (Integer<V>) {
    return render(spec.min.value_or(std::numeric_limits<V>::min()), spec) + ".." +
           render(spec.max.value_or(std::numeric_limits<V>::max()), spec);
  } else if constexpr (Ordered<V>) {
    if (spec.min && spec.max) {
      return render(*spec.min, spec) + ".." + render(*spec.max, spec);
    }
    if (spec.min) {
      return "at least " + render(*spec.min, spec);
    }
    if (spec.max) {
      return "at most " + render(*spec.max, spec);
    }
    if constexpr (std::floating_point<V>) {
      return "any number";
    } else if constexpr (kIsDuration<V>) {
      return "any duration";
    } else {
      return "any size";
    }
  } else if constexpr (std::same_as<V, std::string>) {
    if (!spec.choices.empty()) {
      return "one of " + join_alternatives(spec.choices);
    }
    return spec.non_empty ? "a non-empty string" : "any string";
  } else if constexpr (std::same_as<V, std::filesystem::path>) {
    const bool must_be_set = spec.non_empty || spec.required;
    switch (spec.path_check) {
      case PathCheck::kExistingFile:
        return must_be_set ? "an existing file" : "an existing file, or empty for none";
      case PathCheck::kExistingDirectory:
        return must_be_set ? "an existing directory" : "an existing directory, or empty for none";
      case PathCheck::kNone:
        break;
    }
    return must_be_set ? "a non-empty path" : "any path";
  } else if constexpr (std::same_as<V, std::vector<std::string>>) {
    return spec.non_empty ? "a list of one or more strings" : "a list of strings";
  } else {
    return "one of " + join_alternatives(names_of(spec));
  }
}

// What a value of the field looks like, for "expected ..., got ..." messages.
template <typename V>
std::string expectation(const FieldSpec<V>& spec) {
  if constexpr (std::same_as<V, bool>) {
    return "true or false";
  } else if constexpr (Integer<V>) {
    return "an integer";
  } else if constexpr (std::floating_point<V>) {
    return "a number";
  } else if constexpr (kIsDuration<V>) {
    return "a duration such as 250ms, 5s, 2m or 1h";
  } else if constexpr (std::same_as<V, ByteSize>) {
    return "a byte size such as 512B, 64KiB or 16MiB";
  } else if constexpr (std::same_as<V, std::string>) {
    return spec.choices.empty() ? "a string" : "one of " + join_alternatives(spec.choices);
  } else if constexpr (std::same_as<V, std::filesystem::path>) {
    return "a path";
  } else if constexpr (std::same_as<V, std::vector<std::string>>) {
    return "a list";
  } else {
    return "one of " + join_alternatives(names_of(spec));
  }
}

// Converts a value from the file; sets `error` and returns nothing when it has the wrong type.
template <typename V>
std::optional<V> convert(const ConfigValue& value, const FieldSpec<V>& spec,
                         const ParseContext& context, std::string& error) {
  using Kind = ConfigValue::Kind;
  if (value.kind == Kind::kNull) {
    error = "has no value (remove the key to keep the default)";
    return std::nullopt;
  }
  if constexpr (std::same_as<V, std::vector<std::string>>) {
    if (value.kind != Kind::kSequence) {
      error = expected("a list", value);
      return std::nullopt;
    }
    V out;
    for (const ConfigValue& item : value.items) {
      std::optional<std::string> text = convert_text(item, error);
      if (!text) {
        error = "item " + std::to_string(out.size() + 1) + ": " + error;
        return std::nullopt;
      }
      out.push_back(std::move(*text));
    }
    return out;
  } else {
    if (value.kind != Kind::kScalar) {
      error = expected(expectation(spec), value);
      return std::nullopt;
    }
    if constexpr (std::same_as<V, bool>) {
      if (!value.quoted && (value.text == "true" || value.text == "false")) {
        return value.text == "true";
      }
      error = expected("true or false", value);
      return std::nullopt;
    } else if constexpr (Integer<V>) {
      if (value.quoted) {
        error = expected("an integer (without quotes)", value);
        return std::nullopt;
      }
      std::optional<IntegerText> number = parse_integer(value.text, error);
      if (!number) {
        return std::nullopt;
      }
      if (number->negative) {
        // -(2^63) is the only magnitude that does not fit a positive int64.
        constexpr std::uint64_t kMinMagnitude = std::uint64_t{1} << 63;
        if (number->magnitude <= kMinMagnitude) {
          const std::int64_t signed_value = number->magnitude == kMinMagnitude
                                                ? std::numeric_limits<std::int64_t>::min()
                                                : -static_cast<std::int64_t>(number->magnitude);
          if (std::in_range<V>(signed_value)) {
            return static_cast<V>(signed_value);
          }
        }
      } else if (std::in_range<V>(number->magnitude)) {
        return static_cast<V>(number->magnitude);
      }
      error = value.text + " is out of range";
      return std::nullopt;
    } else if constexpr (std::floating_point<V>) {
      if (value.quoted) {
        error = expected("a number (without quotes)", value);
        return std::nullopt;
      }
      std::optional<double> number = parse_number(value.text, error);
      if (!number) {
        return std::nullopt;
      }
      if (*number > static_cast<double>(std::numeric_limits<V>::max()) ||
          *number < static_cast<double>(std::numeric_limits<V>::lowest())) {
        error = value.text + " is out of range";
        return std::nullopt;
      }
      return static_cast<V>(*number);
    } else if constexpr (kIsDuration<V>) {
      static_assert(std::signed_integral<typename V::rep> && sizeof(typename V::rep) == 8,
                    "durations need a 64-bit signed count");
      static_assert(std::ratio_greater_equal_v<typename V::period, std::milli>,
                    "durations are written in milliseconds or coarser units");
      std::optional<std::int64_t> ms = parse_duration_ms(value.text, error);
      if (!ms) {
        return std::nullopt;
      }
      const V out = std::chrono::duration_cast<V>(std::chrono::milliseconds(*ms));
      if (std::chrono::duration_cast<std::chrono::milliseconds>(out).count() != *ms) {
        error =
            value.text + " is not a multiple of " +
            format_duration_ms(std::chrono::duration_cast<std::chrono::milliseconds>(V(1)).count());
        return std::nullopt;
      }
      return out;
    } else if constexpr (std::same_as<V, ByteSize>) {
      std::optional<std::uint64_t> bytes = parse_byte_size(value.text, error);
      if (!bytes) {
        return std::nullopt;
      }
      return ByteSize{*bytes};
    } else if constexpr (std::same_as<V, std::string>) {
      return convert_text(value, error);
    } else if constexpr (std::same_as<V, std::filesystem::path>) {
      std::optional<std::string> text = convert_text(value, error);
      if (!text) {
        return std::nullopt;
      }
      std::filesystem::path path(*text);
      if (!path.empty() && path.is_relative() && !context.base_dir.empty()) {
        path = (context.base_dir / path).lexically_normal();
      }
      return path;
    } else {
      for (const auto& [name, known] : spec.names) {
        if (name == value.text) {
          return known;
        }
      }
      error = not_allowed(value.text, names_of(spec));
      return std::nullopt;
    }
  }
}

// Checks a converted value against the constraints; returns an error fragment or "".
template <typename V>
std::string check(const V& value, const FieldSpec<V>& spec) {
  if constexpr (Ordered<V>) {
    if ((spec.min && value < *spec.min) || (spec.max && value > *spec.max)) {
      return render(value, spec) + " is out of range";
    }
  } else if constexpr (std::same_as<V, std::string>) {
    if (spec.non_empty && value.empty()) {
      return "must not be empty";
    }
    if (!spec.choices.empty() &&
        std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end()) {
      return not_allowed(value, spec.choices);
    }
  } else if constexpr (std::same_as<V, std::filesystem::path>) {
    if (value.empty()) {
      return spec.non_empty ? "must not be empty" : "";
    }
    return check_path(value, spec.path_check);
  } else if constexpr (std::same_as<V, std::vector<std::string>>) {
    if (spec.non_empty && value.empty()) {
      return "must hold at least one item";
    }
  }
  return {};
}

// One field of a settings struct T, type-erased so a schema can hold fields of every type.
template <typename T>
class FieldBase {
 public:
  virtual ~FieldBase() = default;
  virtual std::string type_name() const = 0;
  virtual std::string allowed() const = 0;
  virtual bool required() const = 0;
  // Converts and checks a value from the file into `settings`; returns an error fragment or "".
  virtual std::string parse(const ConfigValue& value, const ParseContext& context,
                            T& settings) const = 0;
  // Checks what `settings` holds (a default or a value set in code); an error fragment or "".
  virtual std::string check(const T& settings) const = 0;
  // The value as YAML text that parses back to the same value.
  virtual std::string render(const T& settings) const = 0;
};

template <typename T, typename V>
class TypedField final : public FieldBase<T> {
 public:
  TypedField(V T::*member, std::shared_ptr<FieldSpec<V>> spec)
      : member_(member), spec_(std::move(spec)) {}

  std::string type_name() const override { return detail::type_name<V>(); }
  std::string allowed() const override { return detail::allowed(*spec_); }
  bool required() const override { return spec_->required; }
  std::string parse(const ConfigValue& value, const ParseContext& context,
                    T& settings) const override {
    std::string error;
    std::optional<V> converted = detail::convert(value, *spec_, context, error);
    if (!converted) {
      return error;
    }
    error = detail::check(*converted, *spec_);
    if (error.empty()) {
      settings.*member_ = std::move(*converted);
    }
    return error;
  }
  std::string check(const T& settings) const override {
    return detail::check(settings.*member_, *spec_);
  }
  std::string render(const T& settings) const override {
    return detail::render(settings.*member_, *spec_);
  }

 private:
  V T::*member_;
  std::shared_ptr<FieldSpec<V>> spec_;
};

// A field of a nested block B, reached from the enclosing settings T through a member.
template <typename T, typename B>
class NestedField final : public FieldBase<T> {
 public:
  NestedField(B T::*member, std::shared_ptr<const FieldBase<B>> inner)
      : member_(member), inner_(std::move(inner)) {}

  std::string type_name() const override { return inner_->type_name(); }
  std::string allowed() const override { return inner_->allowed(); }
  bool required() const override { return inner_->required(); }
  std::string parse(const ConfigValue& value, const ParseContext& context,
                    T& settings) const override {
    return inner_->parse(value, context, settings.*member_);
  }
  std::string check(const T& settings) const override { return inner_->check(settings.*member_); }
  std::string render(const T& settings) const override { return inner_->render(settings.*member_); }

 private:
  B T::*member_;
  std::shared_ptr<const FieldBase<B>> inner_;
};

}  // namespace detail

// Returned by Schema<T>::field() to add constraints to the field just declared:
//   s.field("port", &S::port, "TCP port of the broker").range(1, 65535);
template <typename V>
class FieldBuilder {
 public:
  FieldBuilder(std::shared_ptr<FieldSpec<V>> spec, std::string key)
      : spec_(std::move(spec)), key_(std::move(key)) {}

  // The key must be set in the file; the struct's default is only a placeholder.
  FieldBuilder& required() {
    spec_->required = true;
    return *this;
  }
  FieldBuilder& range(V min, V max) requires detail::Ordered<V> {
    if (max < min) {
      throw Error(ErrorCode::kInternal, "config schema: empty range for " + key_);
    }
    spec_->min = min;
    spec_->max = max;
    return *this;
  }
  FieldBuilder& at_least(V min) requires detail::Ordered<V> {
    spec_->min = min;
    return *this;
  }
  FieldBuilder& at_most(V max) requires detail::Ordered<V> {
    spec_->max = max;
    return *this;
  }
  FieldBuilder& non_empty() requires(detail::Textual<V> ||
                                     std::same_as<V, std::vector<std::string>>) {
    spec_->non_empty = true;
    return *this;
  }
  FieldBuilder& one_of(
      const std::vector<std::string>& choices) requires std::same_as<V, std::string> {
    spec_->choices = choices;
    return *this;
  }
  // Checked when the path is not empty; combine with non_empty() or required() to demand one.
  FieldBuilder& existing_file() requires std::same_as<V, std::filesystem::path> {
    spec_->path_check = PathCheck::kExistingFile;
    return *this;
  }
  FieldBuilder& existing_directory() requires std::same_as<V, std::filesystem::path> {
    spec_->path_check = PathCheck::kExistingDirectory;
    return *this;
  }

 private:
  std::shared_ptr<FieldSpec<V>> spec_;
  std::string key_;
};

}  // namespace recmesh::config
