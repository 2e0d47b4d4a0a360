#include "recmesh/config/scalars.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"

namespace recmesh::config {
namespace {

constexpr std::size_t kMaxDigits = 19;  // every 19-digit number fits in a uint64

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Digits to a number; nothing when there are more than kMaxDigits.
std::optional<std::uint64_t> to_uint64(std::string_view digits) {
  std::size_t first = digits.find_first_not_of('0');
  if (first == std::string_view::npos) {
    return 0;
  }
  digits.remove_prefix(first);
  if (digits.size() > kMaxDigits) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (char c : digits) {
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

constexpr std::array<Unit, 5> kDurationUnits{{
    {"ms", 1},
    {"s", 1000},
    {"m", std::uint64_t{60} * 1000},
    {"h", std::uint64_t{60} * 60 * 1000},
    {"d", std::uint64_t{24} * 60 * 60 * 1000},
}};

constexpr std::array<Unit, 5> kByteUnits{{
    {"B", 1},
    {"KiB", std::uint64_t{1} << 10},
    {"MiB", std::uint64_t{1} << 20},
    {"GiB", std::uint64_t{1} << 30},
    {"TiB", std::uint64_t{1} << 40},
}};

// Splits "250ms" into "250" and "ms".
std::pair<std::string_view, std::string_view> split_number(std::string_view text) {
  const std::size_t end = std::min(text.find_first_not_of("0123456789"), text.size());
  return {text.substr(0, end), text.substr(end)};
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and adjacent transpositions.
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= m; ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::optional<IntegerText> parse_integer(std::string_view text, std::string& error) {
  IntegerText out;
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
    out.negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  if (!all_digits(digits)) {
    error = "expected an integer, got " + quote_untrusted(text);
    return std::nullopt;
  }
  std::optional<std::uint64_t> magnitude = to_uint64(digits);
  if (!magnitude) {
    error = quote_untrusted(text) + " is out of range";
    return std::nullopt;
  }
  out.magnitude = *magnitude;
  out.negative = out.negative && out.magnitude != 0;
  return out;
}

std::optional<double> parse_number(std::string_view text, std::string& error) {
  // [+-]digits[.digits][(e|E)[+-]digits], checked here because from_chars also takes "inf",
  // "nan" and hexadecimal forms.
  std::string_view rest = text;
  if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
    rest.remove_prefix(1);
  }
  const auto take_digits = [&rest]() {
    const std::size_t n = std::min(rest.find_first_not_of("0123456789"), rest.size());
    rest.remove_prefix(n);
    return n;
  };
  bool valid = take_digits() > 0;
  if (valid && !rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    valid = take_digits() > 0;
  }
  if (valid && !rest.empty() && (rest.front() == 'e' || rest.front() == 'E')) {
    rest.remove_prefix(1);
    if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
      rest.remove_prefix(1);
    }
    valid = take_digits() > 0;
  }
  if (!valid || !rest.empty()) {
    error = "expected a number, got " + quote_untrusted(text);
    return std::nullopt;
  }
  std::string_view number = text;
  if (number.front() == '+') {
    number.remove_prefix(1);
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || !std::isfinite(value)) {
    error = quote_untrusted(text) + " is out of range";
    return std::nullopt;
  }
  return value;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text, std::string& error) {
  const std::string expectation =
      "expected a duration such as 250ms, 5s, 2m or 1h, got " + quote_untrusted(text);
  if (text == "0") {
    return 0;
  }
  const auto [digits, unit] = split_number(text);
  if (digits.empty()) {
    error = expectation;
    return std::nullopt;
  }
  if (unit.empty()) {
    error = expectation + " (the unit is missing)";
    return std::nullopt;
  }
  if (unit.front() == '.') {
    error = expectation + " (use a smaller unit instead of a fraction)";
    return std::nullopt;
  }
  const auto found = std::find_if(kDurationUnits.begin(), kDurationUnits.end(),
                                  [u = unit](const Unit& known) { return known.name == u; });
  if (found == kDurationUnits.end()) {
    error = expectation + " (units: ms, s, m, h, d)";
    return std::nullopt;
  }
  std::optional<std::uint64_t> count = to_uint64(digits);
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!count || *count > kMax / found->factor) {
    error = quote_untrusted(text) + " is out of range";
    return std::nullopt;
  }
  return static_cast<std::int64_t>(*count * found->factor);
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text, std::string& error) {
  const std::string expectation =
      "expected a byte size such as 512B, 64KiB or 16MiB, got " + quote_untrusted(text);
  const auto [digits, unit] = split_number(text);
  if (digits.empty()) {
    error = expectation;
    return std::nullopt;
  }
  if (!unit.empty() && unit.front() == '.') {
    error = expectation + " (use a smaller unit instead of a fraction)";
    return std::nullopt;
  }
  std::uint64_t factor = 1;
  if (!unit.empty()) {
    const auto found = std::find_if(kByteUnits.begin(), kByteUnits.end(),
                                    [u = unit](const Unit& known) { return known.name == u; });
    if (found == kByteUnits.end()) {
      const std::string lowered = lower(unit);
      const bool decimal = lowered == "k" || lowered == "kb" || lowered == "m" || lowered == "mb" ||
                           lowered == "g" || lowered == "gb" || lowered == "t" || lowered == "tb";
      error = expectation + (decimal ? " (write KiB, MiB, GiB or TiB: units are powers of 1024)"
                                     : " (units: B, KiB, MiB, GiB, TiB)");
      return std::nullopt;
    }
    factor = found->factor;
  }
  std::optional<std::uint64_t> count = to_uint64(digits);
  if (!count || *count > std::numeric_limits<std::uint64_t>::max() / factor) {
    error = quote_untrusted(text) + " is out of range";
    return std::nullopt;
  }
  return *count * factor;
}

std::string format_duration_ms(std::int64_t ms) {
  if (ms == 0) {
    return "0s";
  }
  for (auto unit = kDurationUnits.rbegin(); unit != kDurationUnits.rend(); ++unit) {
    const auto factor = static_cast<std::int64_t>(unit->factor);
    if (ms % factor == 0) {
      return fmt::format("{}{}", ms / factor, unit->name);
    }
  }
  return fmt::format("{}ms", ms);
}

std::string format_byte_size(std::uint64_t bytes) {
  if (bytes == 0) {
    return "0B";
  }
  for (auto unit = kByteUnits.rbegin(); unit != kByteUnits.rend(); ++unit) {
    if (bytes % unit->factor == 0) {
      return fmt::format("{}{}", bytes / unit->factor, unit->name);
    }
  }
  return fmt::format("{}B", bytes);
}

std::string format_number(double value) {
  std::string out = fmt::format("{}", value);
  // fmt writes "inf" and "nan", which no field accepts; show them as YAML would.
  if (!std::isfinite(value)) {
    return std::isnan(value) ? ".nan" : (value > 0 ? ".inf" : "-.inf");
  }
  return out;
}

std::string yaml_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string describe(const ConfigValue& value) {
  switch (value.kind) {
    case ConfigValue::Kind::kNull:
      return "nothing";
    case ConfigValue::Kind::kScalar:
      return value.quoted ? "the quoted string " + quote_untrusted(value.text)
                          : quote_untrusted(value.text);
    case ConfigValue::Kind::kSequence:
      return "a list";
    case ConfigValue::Kind::kMapping:
      return "a mapping";
  }
  return "something else";
}

std::string control_character_error(std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return fmt::format("contains the control character \\x{:02x}", byte);
    }
  }
  return {};
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  const std::string lowered = lower(word.substr(0, 64));
  const std::size_t limit = lowered.size() <= 3 ? 1 : (lowered.size() <= 7 ? 2 : 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(lowered, lower(candidate));
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string join_alternatives(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) {
      out += i + 1 == words.size() ? " or " : ", ";
    }
    out += words[i];
  }
  return out;
}

}  // namespace recmesh::config
