#include "recmesh/protocol/timestamp.hpp"

#include <fmt/format.h>

#include "recmesh/core/identifier.hpp"

namespace recmesh::protocol {
namespace {

using std::chrono::days;
using std::chrono::milliseconds;

constexpr std::string_view kShape = "YYYY-MM-DDTHH:MM:SS.mmmZ";
constexpr std::string_view kDigitSlots = "YMDHSm";  // every other character of kShape is literal

Result<Timestamp> invalid(std::string_view text, std::string_view reason) {
  return Result<Timestamp>::failure(ErrorCode::kInvalidArgument,
                                    fmt::format("{} is not a timestamp: {} (expected UTC as {})",
                                                quote_untrusted(text), reason, kShape));
}

// The value of the digits text[from, from + count), or -1 if one is not a digit.
int digits(std::string_view text, std::size_t from, std::size_t count) {
  int value = 0;
  for (std::size_t i = from; i < from + count; ++i) {
    char c = text[i];
    if (c < '0' || c > '9') {
      return -1;
    }
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

Timestamp min_timestamp() {
  return Timestamp(milliseconds(0));
}

Timestamp max_timestamp() {
  auto last_day = std::chrono::sys_days(std::chrono::year(9999) / 12 / 31);
  return Timestamp(last_day) + milliseconds(86'400'000 - 1);
}

std::string format_timestamp(Timestamp t) {
  auto day = std::chrono::floor<days>(t);
  std::chrono::year_month_day ymd(day);
  std::chrono::hh_mm_ss<milliseconds> time(t - day);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     time.hours().count(), time.minutes().count(), time.seconds().count(),
                     time.subseconds().count());
}

Result<Timestamp> parse_timestamp(std::string_view text) {
  if (text.size() != kShape.size()) {
    return invalid(text, fmt::format("it has {} characters, not {}", text.size(), kShape.size()));
  }
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    char shape = kShape[i];
    if (kDigitSlots.find(shape) != std::string_view::npos) {
      if (text[i] < '0' || text[i] > '9') {
        return invalid(text, fmt::format("character {} is not a digit", i + 1));
      }
    } else if (text[i] != shape) {
      return invalid(text, fmt::format("character {} must be '{}'", i + 1, shape));
    }
  }
  int year = digits(text, 0, 4);
  int month = digits(text, 5, 2);
  int day = digits(text, 8, 2);
  int hour = digits(text, 11, 2);
  int minute = digits(text, 14, 2);
  int second = digits(text, 17, 2);
  int millis = digits(text, 20, 3);
  if (year < 1970) {
    return invalid(text, "years before 1970 are not allowed");
  }
  std::chrono::year_month_day ymd{std::chrono::year(year),
                                  std::chrono::month(static_cast<unsigned>(month)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) {
    return invalid(text, "no such date");
  }
  if (hour > 23 || minute > 59 || second > 59) {
    return invalid(text, "no such time of day (leap seconds are not allowed)");
  }
  return Timestamp(std::chrono::sys_days(ymd)) + std::chrono::hours(hour) +
         std::chrono::minutes(minute) + std::chrono::seconds(second) + milliseconds(millis);
}

}  // namespace recmesh::protocol
