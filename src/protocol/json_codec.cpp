#include "json_codec.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"
#include "recmesh/pki/identity.hpp"
#include "recmesh/protocol/limits.hpp"

namespace recmesh::protocol {
namespace {

// The reason in one of nlohmann's messages, without its prefix and without the offending bytes
// it quotes ("; last read: '...'"), escaped and bounded so it is safe to log.
std::string parse_reason(std::string_view what) {
  if (auto bracket = what.find("] "); bracket != std::string_view::npos) {
    what.remove_prefix(bracket + 2);
  }
  if (what.starts_with("parse error")) {
    if (auto colon = what.find(": "); colon != std::string_view::npos) {
      what.remove_prefix(colon + 2);
    }
  }
  if (auto last_read = what.find("; last read"); last_read != std::string_view::npos) {
    what = what.substr(0, last_read);
  }
  constexpr std::size_t kMaxReason = 120;
  std::string reason;
  for (char c : what.substr(0, kMaxReason)) {
    auto byte = static_cast<unsigned char>(c);
    reason += byte < 0x20 || byte >= 0x7f ? fmt::format("\\x{:02x}", byte) : std::string(1, c);
  }
  return reason;
}

// Builds the DOM like nlohmann's own SAX parser, but refuses duplicate keys and deep nesting
// as it goes. nlohmann's parser loop is iterative, so hostile nesting cannot exhaust the stack
// before this handler stops it.
class StrictDomBuilder final : public nlohmann::json_sax<json> {
 public:
  explicit StrictDomBuilder(json& root) : root_(root) {}

  bool null() override { return put(json(nullptr)); }
  bool boolean(bool v) override { return put(json(v)); }
  bool number_integer(number_integer_t v) override { return put(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return put(json(v)); }
  bool number_float(number_float_t v, const string_t& /*text*/) override { return put(json(v)); }
  bool string(string_t& v) override { return put(json(std::move(v))); }
  bool binary(binary_t& /*v*/) override { return fail("binary values are not JSON"); }

  bool start_object(std::size_t /*elements*/) override { return open(json::object()); }
  bool key(string_t& k) override {
    json& object = *stack_.back();
    if (object.contains(k)) {
      return fail(fmt::format("duplicate key {}", quote_untrusted(k)));
    }
    pending_key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*elements*/) override { return open(json::array()); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    return fail(fmt::format("not valid JSON at byte {}: {}", position, parse_reason(ex.what())));
  }

  const std::string& error() const { return error_; }

 private:
  bool fail(std::string message) {
    if (error_.empty()) {
      error_ = std::move(message);
    }
    return false;
  }

  // Places a scalar or a new container where the parser stands; returns the placed value.
  json* place(json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[std::move(pending_key_)] = std::move(value));
  }

  bool put(json&& value) {
    place(std::move(value));
    return true;
  }

  bool open(json&& container) {
    if (stack_.size() >= kMaxJsonDepth) {
      return fail(fmt::format("nested deeper than {} levels", kMaxJsonDepth));
    }
    stack_.push_back(place(std::move(container)));
    return true;
  }

  json& root_;
  std::vector<json*> stack_;
  std::string pending_key_;
  std::string error_;
};

bool has_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// Checks a free-form value standing at nesting `depth` of the payload.
void check_free_value(const json& value, std::size_t depth, const std::string& path,
                      DecodeErrors& errors) {
  if (errors.failed()) {
    return;
  }
  switch (value.type()) {
    case json::value_t::object:
    case json::value_t::array:
      if (depth > kMaxJsonDepth) {
        errors.fail(path, fmt::format("nested deeper than {} levels", kMaxJsonDepth));
        return;
      }
      if (value.is_object()) {
        for (const auto& [k, v] : value.items()) {
          if (!is_valid_utf8(k) || has_nul(k)) {
            errors.fail(path, "holds a key that is not valid UTF-8 or contains NUL");
            return;
          }
          check_free_value(v, depth + 1, path, errors);
        }
      } else {
        for (const auto& v : value) {
          check_free_value(v, depth + 1, path, errors);
        }
      }
      return;
    case json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      if (!is_valid_utf8(s) || has_nul(s)) {
        errors.fail(path, "holds a string that is not valid UTF-8 or contains NUL");
      }
      return;
    }
    case json::value_t::number_float:
      if (!std::isfinite(value.get<double>())) {
        errors.fail(path, "holds a number that is not finite");
      }
      return;
    case json::value_t::null:
    case json::value_t::boolean:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return;
    case json::value_t::binary:
    case json::value_t::discarded:
      errors.fail(path, "holds a value that is not JSON");
      return;
  }
}

}  // namespace

Result<json> parse_payload(std::string_view payload) {
  if (payload.empty()) {
    return Result<json>::failure(ErrorCode::kInvalidArgument, "empty payload");
  }
  if (payload.size() > kMaxMessageBytes) {
    return Result<json>::failure(
        ErrorCode::kInvalidArgument,
        fmt::format("payload of {} bytes exceeds {} bytes", payload.size(), kMaxMessageBytes));
  }
  json root;
  StrictDomBuilder builder(root);
  bool ok = false;
  try {
    ok = json::sax_parse(payload.begin(), payload.end(), &builder);
  } catch (const std::exception& e) {
    return Result<json>::failure(ErrorCode::kInvalidArgument,
                                 fmt::format("not valid JSON: {}", e.what()));
  }
  if (!ok) {
    return Result<json>::failure(ErrorCode::kInvalidArgument,
                                 builder.error().empty() ? "not valid JSON" : builder.error());
  }
  if (!root.is_object()) {
    return Result<json>::failure(ErrorCode::kInvalidArgument, "payload is not a JSON object");
  }
  return root;
}

Result<std::string> dump_canonical(const json& value) {
  std::string text;
  try {
    text = value.dump();
  } catch (const std::exception& e) {
    return Result<std::string>::failure(ErrorCode::kInvalidArgument,
                                        fmt::format("cannot serialise: {}", e.what()));
  }
  if (text.size() > kMaxMessageBytes) {
    return Result<std::string>::failure(
        ErrorCode::kInvalidArgument,
        fmt::format("payload of {} bytes exceeds {} bytes", text.size(), kMaxMessageBytes));
  }
  return text;
}

void DecodeErrors::fail(std::string_view path, std::string_view reason) {
  if (failed_) {
    return;
  }
  failed_ = true;
  message_ = path.empty() ? std::string(reason) : fmt::format("{}: {}", path, reason);
}

std::string join_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

std::string index_path(std::string_view parent, std::size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

std::string read_identifier(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  const auto& s = value.get_ref<const std::string&>();
  if (!is_valid_identifier(s)) {
    errors.fail(path,
                fmt::format("{} is not an ID ([a-z0-9][a-z0-9-]{{0,31}})", quote_untrusted(s)));
    return {};
  }
  return s;
}

std::string read_common_name(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  const auto& s = value.get_ref<const std::string&>();
  if (!pki::parse_common_name(s).has_value()) {
    errors.fail(path, fmt::format("{} is not a certificate common name (rec_<rec>_<member>_"
                                  "<device>, bridge_<rec>_<member> or ems_<service>)",
                                  quote_untrusted(s)));
    return {};
  }
  return s;
}

std::string read_text(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  const auto& s = value.get_ref<const std::string&>();
  if (s.size() > kMaxTextBytes) {
    errors.fail(path, fmt::format("has {} bytes, at most {} are allowed", s.size(), kMaxTextBytes));
    return {};
  }
  if (!is_valid_utf8(s) || has_nul(s)) {
    errors.fail(path, "must be UTF-8 text without NUL");
    return {};
  }
  return s;
}

std::string read_label(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  const auto& s = value.get_ref<const std::string&>();
  bool printable = std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (s.empty() || s.size() > kMaxLabelBytes || !printable) {
    errors.fail(path, fmt::format("{} is not a label (1 to {} printable ASCII characters, no "
                                  "spaces)",
                                  quote_untrusted(s), kMaxLabelBytes));
    return {};
  }
  return s;
}

Uuid read_uuid(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  auto parsed = Uuid::parse(value.get_ref<const std::string&>());
  if (!parsed) {
    errors.fail(path, parsed.status().message);
    return {};
  }
  return *parsed;
}

Timestamp read_timestamp(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return {};
  }
  auto parsed = parse_timestamp(value.get_ref<const std::string&>());
  if (!parsed) {
    errors.fail(path, parsed.status().message);
    return {};
  }
  return *parsed;
}

std::uint64_t read_unsigned(const json& value, std::uint64_t max, const std::string& path,
                            DecodeErrors& errors) {
  const auto out_of_range = [&] { errors.fail(path, fmt::format("must be in [0, {}]", max)); };
  if (value.is_number_unsigned()) {
    auto v = value.get<std::uint64_t>();
    if (v > max) {
      out_of_range();
      return 0;
    }
    return v;
  }
  if (value.is_number_integer()) {
    auto v = value.get<std::int64_t>();
    if (v < 0 || static_cast<std::uint64_t>(v) > max) {
      out_of_range();
      return 0;
    }
    return static_cast<std::uint64_t>(v);
  }
  errors.fail(path, "must be an integer");
  return 0;
}

std::int64_t read_signed(const json& value, std::int64_t min, std::int64_t max,
                         const std::string& path, DecodeErrors& errors) {
  const auto out_of_range = [&] {
    errors.fail(path, fmt::format("must be in [{}, {}]", min, max));
  };
  if (value.is_number_unsigned()) {
    auto v = value.get<std::uint64_t>();
    if (max < 0 || v > static_cast<std::uint64_t>(max)) {
      out_of_range();
      return 0;
    }
    return static_cast<std::int64_t>(v);
  }
  if (value.is_number_integer()) {
    auto v = value.get<std::int64_t>();
    if (v < min || v > max) {
      out_of_range();
      return 0;
    }
    return v;
  }
  errors.fail(path, "must be an integer");
  return 0;
}

double read_number(const json& value, double min, double max, const std::string& path,
                   DecodeErrors& errors) {
  if (!value.is_number()) {
    errors.fail(path, "must be a number");
    return 0;
  }
  auto v = value.get<double>();
  if (!std::isfinite(v) || v < min || v > max) {
    errors.fail(path, fmt::format("must be a number in [{}, {}]", min, max));
    return 0;
  }
  return canonical_double(v);
}

bool read_bool(const json& value, const std::string& path, DecodeErrors& errors) {
  if (!value.is_boolean()) {
    errors.fail(path, "must be true or false");
    return false;
  }
  return value.get<bool>();
}

json read_free_object(const json& value, std::size_t depth, const std::string& path,
                      DecodeErrors& errors) {
  if (!value.is_object()) {
    errors.fail(path, "must be an object");
    return json::object();
  }
  DecodeErrors local;
  check_free_value(value, depth, path, local);
  if (local.failed()) {
    errors.fail("", local.message());
    return json::object();
  }
  auto text = dump_canonical(value);
  if (!text) {
    errors.fail(path, text.status().message);
    return json::object();
  }
  if (text->size() > kMaxObjectBytes) {
    errors.fail(path, fmt::format("has {} bytes encoded, at most {} are allowed", text->size(),
                                  kMaxObjectBytes));
    return json::object();
  }
  return value;
}

json read_object_or_text(const json& value, std::size_t depth, const std::string& path,
                         DecodeErrors& errors) {
  if (value.is_string()) {
    return json(read_text(value, path, errors));
  }
  if (value.is_object()) {
    return read_free_object(value, depth, path, errors);
  }
  errors.fail(path, "must be an object or a string");
  return json::object();
}

ObjectReader::ObjectReader(const json& value, std::string path, DecodeErrors& errors,
                           std::size_t depth)
    : path_(std::move(path)), errors_(errors), depth_(depth) {
  if (value.is_object()) {
    object_ = &value;
  } else {
    errors_.fail(path_, "must be an object");
  }
}

const json* ObjectReader::find(std::string_view key) {
  seen_.push_back(key);
  if (object_ == nullptr) {
    return nullptr;
  }
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &*it;
}

const json* ObjectReader::required(std::string_view key) {
  const json* v = find(key);
  if (v == nullptr && object_ != nullptr) {
    errors_.fail(path(key), "missing");
  }
  return v;
}

const json* ObjectReader::optional(std::string_view key) {
  return find(key);
}

std::string ObjectReader::identifier(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? std::string() : read_identifier(*v, path(key), errors_);
}

std::string ObjectReader::common_name(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? std::string() : read_common_name(*v, path(key), errors_);
}

std::string ObjectReader::text(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? std::string() : read_text(*v, path(key), errors_);
}

std::string ObjectReader::label(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? std::string() : read_label(*v, path(key), errors_);
}

Uuid ObjectReader::uuid(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? Uuid() : read_uuid(*v, path(key), errors_);
}

Timestamp ObjectReader::timestamp(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? Timestamp() : read_timestamp(*v, path(key), errors_);
}

std::uint64_t ObjectReader::unsigned_integer(std::string_view key, std::uint64_t max) {
  const json* v = required(key);
  return v == nullptr ? 0 : read_unsigned(*v, max, path(key), errors_);
}

std::int64_t ObjectReader::signed_integer(std::string_view key, std::int64_t min,
                                          std::int64_t max) {
  const json* v = required(key);
  return v == nullptr ? 0 : read_signed(*v, min, max, path(key), errors_);
}

double ObjectReader::number(std::string_view key, double min, double max) {
  const json* v = required(key);
  return v == nullptr ? 0 : read_number(*v, min, max, path(key), errors_);
}

bool ObjectReader::boolean(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? false : read_bool(*v, path(key), errors_);
}

json ObjectReader::free_object(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? json::object() : read_free_object(*v, depth_ + 1, path(key), errors_);
}

json ObjectReader::object_or_text(std::string_view key) {
  const json* v = required(key);
  return v == nullptr ? json::object() : read_object_or_text(*v, depth_ + 1, path(key), errors_);
}

std::vector<const json*> ObjectReader::array(std::string_view key, std::size_t max_items) {
  const json* v = required(key);
  if (v == nullptr) {
    return {};
  }
  if (!v->is_array()) {
    errors_.fail(path(key), "must be an array");
    return {};
  }
  if (v->size() > max_items) {
    errors_.fail(path(key),
                 fmt::format("has {} entries, at most {} are allowed", v->size(), max_items));
    return {};
  }
  std::vector<const json*> items;
  items.reserve(v->size());
  for (const auto& item : *v) {
    items.push_back(&item);
  }
  return items;
}

void ObjectReader::finish() {
  if (object_ == nullptr) {
    return;
  }
  for (const auto& [k, v] : object_->items()) {
    if (std::find(seen_.begin(), seen_.end(), std::string_view(k)) == seen_.end()) {
      errors_.fail(path_, fmt::format("unknown field {}", quote_untrusted(k)));
      return;
    }
  }
}

}  // namespace recmesh::protocol
