#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"

namespace recmesh::protocol {

// An instant on the wire: UTC, millisecond resolution.
using Timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

// Earliest and latest instants a message may carry: 1970-01-01T00:00:00.000Z and
// 9999-12-31T23:59:59.999Z.
Timestamp min_timestamp();
Timestamp max_timestamp();

// RFC 3339 in one spelling only: `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 characters). One spelling per
// instant keeps encodings canonical, so a signature over them is stable. Precondition: `t` is
// within [min_timestamp(), max_timestamp()].
std::string format_timestamp(Timestamp t);

// Inverse of format_timestamp; rejects every other spelling (offsets, lower-case letters,
// other precisions, leap seconds, impossible dates) with kInvalidArgument.
Result<Timestamp> parse_timestamp(std::string_view text);

}  // namespace recmesh::protocol
