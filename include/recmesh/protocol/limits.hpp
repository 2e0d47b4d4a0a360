#pragma once

#include <cstddef>
#include <cstdint>

namespace recmesh::protocol {

// Bounds on untrusted input (docs/protocol/messages.md, "Limits"). A decoder rejects anything
// beyond them before it allocates in proportion to the input.

// A topic name or filter, in bytes (MQTT allows 65535; ours are never near 200).
inline constexpr std::size_t kMaxTopicBytes = 1024;
// Levels of a metric name after `metrics/`, and bytes in one such level.
inline constexpr std::size_t kMaxMetricLevels = 8;
inline constexpr std::size_t kMaxMetricLevelBytes = 64;

// A whole JSON payload, in bytes.
inline constexpr std::size_t kMaxMessageBytes = std::size_t{64} * 1024;
// Nesting of objects and arrays anywhere in a payload (the top-level object is depth 1).
inline constexpr std::size_t kMaxJsonDepth = 16;
// Entries of target.device_ids and details.per_device.
inline constexpr std::size_t kMaxDevicesPerControl = 256;
// A free-form object (params, details, fields) in its canonical encoding, in bytes.
inline constexpr std::size_t kMaxObjectBytes = std::size_t{4} * 1024;
// Free text (log messages, reasons, string details), in bytes of UTF-8.
inline constexpr std::size_t kMaxTextBytes = std::size_t{4} * 1024;
// Short labels (versions, log sources), printable ASCII.
inline constexpr std::size_t kMaxLabelBytes = 64;

// Integers on the wire stay within the doubles' exact range so any JSON consumer reads them
// exactly.
inline constexpr std::uint64_t kMaxWireInteger = (std::uint64_t{1} << 53) - 1;

}  // namespace recmesh::protocol
