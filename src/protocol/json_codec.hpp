#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "recmesh/core/result.hpp"
#include "recmesh/protocol/timestamp.hpp"
#include "recmesh/protocol/uuid.hpp"

#include "utf8.hpp"

namespace recmesh::protocol {

using nlohmann::json;

// Parses a payload that must be one JSON object: at most kMaxMessageBytes, nesting at most
// kMaxJsonDepth, valid UTF-8, no duplicate keys (nlohmann would keep the last one silently,
// and two parsers that pick different duplicates disagree about what was signed).
Result<json> parse_payload(std::string_view payload);

// Compact dump with sorted keys (nlohmann objects are ordered maps); fails instead of throwing.
Result<std::string> dump_canonical(const json& value);

// The first problem found while reading a message. Later failures are ignored, so readers run
// straight through and check once at the end.
class DecodeErrors {
 public:
  void fail(std::string_view path, std::string_view reason);
  bool failed() const { return failed_; }
  const std::string& message() const { return message_; }

 private:
  bool failed_ = false;
  std::string message_;
};

// Joins a field path: "retry_policy" + "backoff" -> "retry_policy.backoff".
std::string join_path(std::string_view parent, std::string_view key);
std::string index_path(std::string_view parent, std::size_t index);

// Typed reads of one JSON value at `path`; on failure they record it and return a default.
std::string read_identifier(const json& value, const std::string& path, DecodeErrors& errors);
std::string read_common_name(const json& value, const std::string& path, DecodeErrors& errors);
std::string read_text(const json& value, const std::string& path, DecodeErrors& errors);
std::string read_label(const json& value, const std::string& path, DecodeErrors& errors);
Uuid read_uuid(const json& value, const std::string& path, DecodeErrors& errors);
Timestamp read_timestamp(const json& value, const std::string& path, DecodeErrors& errors);
std::uint64_t read_unsigned(const json& value, std::uint64_t max, const std::string& path,
                            DecodeErrors& errors);
std::int64_t read_signed(const json& value, std::int64_t min, std::int64_t max,
                         const std::string& path, DecodeErrors& errors);
double read_number(const json& value, double min, double max, const std::string& path,
                   DecodeErrors& errors);
bool read_bool(const json& value, const std::string& path, DecodeErrors& errors);
// A free-form object at nesting `depth` of the payload (the top-level object is 1): nesting
// within kMaxJsonDepth, valid UTF-8 without NUL everywhere, finite numbers, and at most
// kMaxObjectBytes encoded. The same checks on decode and encode keep a value built in memory
// from encoding to what a peer would refuse.
json read_free_object(const json& value, std::size_t depth, const std::string& path,
                      DecodeErrors& errors);
// An object as above, or a text.
json read_object_or_text(const json& value, std::size_t depth, const std::string& path,
                         DecodeErrors& errors);

template <typename E>
E read_enum(const json& value, Result<E> (*parse)(std::string_view), const std::string& path,
            DecodeErrors& errors) {
  if (!value.is_string()) {
    errors.fail(path, "must be a string");
    return E{};
  }
  auto parsed = parse(value.get_ref<const std::string&>());
  if (!parsed) {
    errors.fail(path, parsed.status().message);
    return E{};
  }
  return *parsed;
}

// Reads the fields of one JSON object and, in finish(), rejects the fields nobody asked for.
class ObjectReader {
 public:
  // Records an error when `value` is not an object; the reader then sees no fields. `depth`
  // is the object's nesting in the payload, the top-level object being 1.
  ObjectReader(const json& value, std::string path, DecodeErrors& errors, std::size_t depth = 1);

  // The value of a required field, or nullptr (error recorded) when it is missing.
  const json* required(std::string_view key);
  // The value of an optional field, or nullptr when it is absent. A null is not absence.
  const json* optional(std::string_view key);
  std::string path(std::string_view key) const { return join_path(path_, key); }
  DecodeErrors& errors() { return errors_; }
  std::size_t depth() const { return depth_; }

  // Shorthands for required fields.
  std::string identifier(std::string_view key);
  std::string common_name(std::string_view key);
  std::string text(std::string_view key);
  std::string label(std::string_view key);
  Uuid uuid(std::string_view key);
  Timestamp timestamp(std::string_view key);
  std::uint64_t unsigned_integer(std::string_view key, std::uint64_t max);
  std::int64_t signed_integer(std::string_view key, std::int64_t min, std::int64_t max);
  double number(std::string_view key, double min, double max);
  bool boolean(std::string_view key);
  json free_object(std::string_view key);
  json object_or_text(std::string_view key);
  template <typename E>
  E enumeration(std::string_view key, Result<E> (*parse)(std::string_view)) {
    const json* v = required(key);
    return v == nullptr ? E{} : read_enum(*v, parse, path(key), errors_);
  }
  // The elements of a required array of at most `max_items`, or an empty list on error.
  std::vector<const json*> array(std::string_view key, std::size_t max_items);

  void finish();

 private:
  const json* find(std::string_view key);

  const json* object_ = nullptr;
  std::string path_;
  DecodeErrors& errors_;
  std::size_t depth_;
  std::vector<std::string_view> seen_;
};

// Runs `read` over a parsed payload; "invalid <what>: <path>: <reason>" on failure.
template <typename T>
Result<T> decode_payload(std::string_view payload, std::string_view what,
                         T (*read)(ObjectReader&)) {
  auto parsed = parse_payload(payload);
  if (!parsed) {
    return Result<T>::failure(
        ErrorCode::kInvalidArgument,
        std::string("invalid ") + std::string(what) + ": " + parsed.status().message);
  }
  DecodeErrors errors;
  ObjectReader reader(*parsed, "", errors);
  T value = read(reader);
  reader.finish();
  if (errors.failed()) {
    return Result<T>::failure(
        ErrorCode::kInvalidArgument,
        std::string("invalid ") + std::string(what) + ": " + errors.message());
  }
  return value;
}

// Checks `encoded` with the decoder's own reader, so nothing is sent that a peer would refuse,
// then dumps it canonically within kMaxMessageBytes.
template <typename T>
Result<std::string> encode_payload(const json& encoded, std::string_view what,
                                   T (*read)(ObjectReader&)) {
  DecodeErrors errors;
  ObjectReader reader(encoded, "", errors);
  (void)read(reader);
  reader.finish();
  if (errors.failed()) {
    return Result<std::string>::failure(
        ErrorCode::kInvalidArgument,
        std::string("cannot encode ") + std::string(what) + ": " + errors.message());
  }
  auto text = dump_canonical(encoded);
  if (!text) {
    return Result<std::string>::failure(
        ErrorCode::kInvalidArgument,
        std::string("cannot encode ") + std::string(what) + ": " + text.status().message);
  }
  return text;
}

// Doubles as written: -0 becomes 0 so equal values encode to equal bytes.
inline double canonical_double(double v) {
  return v + 0.0;
}

}  // namespace recmesh::protocol
