#include "secmgr/json_body.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"
#include "recmesh/protocol/limits.hpp"

#include "secmgr/api_error.hpp"

namespace recmesh::secmgr {
namespace {

// Nesting beyond this is refused before nlohmann builds it.
constexpr std::size_t kMaxDepth = 8;

std::string join(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (std::string_view key : keys) {
    out += out.empty() ? "" : ", ";
    out += key;
  }
  return out;
}

}  // namespace

int http_status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
      return 409;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

JsonBody::JsonBody(std::string_view text, std::initializer_list<std::string_view> allowed) {
  if (text.empty()) {
    object_ = nlohmann::json::object();
    return;
  }
  std::size_t depth = 0;
  const auto limit_depth = [&depth](int current, nlohmann::json::parse_event_t event,
                                    nlohmann::json&) {
    (void)current;
    if (event == nlohmann::json::parse_event_t::object_start ||
        event == nlohmann::json::parse_event_t::array_start) {
      if (++depth > kMaxDepth) {
        throw ApiError::bad_request(
            fmt::format("request body: JSON nested deeper than {} levels", kMaxDepth));
      }
    } else if (event == nlohmann::json::parse_event_t::object_end ||
               event == nlohmann::json::parse_event_t::array_end) {
      --depth;
    }
    return true;
  };
  try {
    object_ = nlohmann::json::parse(text.begin(), text.end(), limit_depth);
  } catch (const nlohmann::json::parse_error& e) {
    throw ApiError::bad_request(fmt::format("request body is not valid JSON (at byte {})", e.byte));
  }
  if (!object_.is_object()) {
    throw ApiError::bad_request("request body must be a JSON object");
  }
  check_keys(allowed);
}

JsonBody::JsonBody(nlohmann::json object, std::string context,
                   std::initializer_list<std::string_view> allowed)
    : object_(std::move(object)), context_(std::move(context)) {
  if (!object_.is_object()) {
    throw ApiError::bad_request(fmt::format("{} must be a JSON object", context_));
  }
  check_keys(allowed);
}

void JsonBody::check_keys(std::initializer_list<std::string_view> allowed) const {
  for (const auto& [key, value] : object_.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      throw ApiError::bad_request(fmt::format("{}: unknown field {} (allowed: {})", context_,
                                              quote_untrusted(key), join(allowed)));
    }
  }
}

std::vector<JsonBody> JsonBody::object_list(std::string_view key,
                                            std::initializer_list<std::string_view> allowed,
                                            std::size_t max_items) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    return {};
  }
  if (!value->is_array()) {
    throw ApiError::bad_request(fmt::format("{}: {} must be an array", context_, key));
  }
  if (value->size() > max_items) {
    throw ApiError::bad_request(
        fmt::format("{}: {} has more than {} entries", context_, key, max_items));
  }
  std::vector<JsonBody> out;
  out.reserve(value->size());
  for (std::size_t i = 0; i < value->size(); ++i) {
    out.push_back(JsonBody((*value)[i], fmt::format("{}: {}[{}]", context_, key, i), allowed));
  }
  return out;
}

const nlohmann::json* JsonBody::find(std::string_view key) const {
  const auto it = object_.find(key);
  return it == object_.end() || it->is_null() ? nullptr : &*it;
}

bool JsonBody::has(std::string_view key) const {
  return find(key) != nullptr;
}

std::string JsonBody::required_string(std::string_view key) const {
  std::optional<std::string> value = optional_string(key);
  if (!value) {
    throw ApiError::bad_request(fmt::format("{}: {} is required", context_, key));
  }
  return *value;
}

std::optional<std::string> JsonBody::optional_string(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_string()) {
    throw ApiError::bad_request(fmt::format("{}: {} must be a string", context_, key));
  }
  return value->get<std::string>();
}

std::optional<std::int64_t> JsonBody::optional_integer(std::string_view key, std::int64_t min,
                                                       std::int64_t max) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_number_integer()) {
    throw ApiError::bad_request(fmt::format("{}: {} must be an integer", context_, key));
  }
  const std::int64_t number = value->get<std::int64_t>();
  if (number < min || number > max ||
      (value->is_number_unsigned() && value->get<std::uint64_t>() > protocol::kMaxWireInteger)) {
    throw ApiError::bad_request(
        fmt::format("{}: {} must be between {} and {}", context_, key, min, max));
  }
  return number;
}

std::optional<bool> JsonBody::optional_bool(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_boolean()) {
    throw ApiError::bad_request(fmt::format("{}: {} must be true or false", context_, key));
  }
  return value->get<bool>();
}

}  // namespace recmesh::secmgr
