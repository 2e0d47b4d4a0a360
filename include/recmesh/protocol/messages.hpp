#pragma once

// Every payload of the communication model: the remote control messages and the monitoring
// payloads, with the shared wire types and limits (docs/protocol/messages.md).
#include "recmesh/protocol/control_messages.hpp"    // IWYU pragma: export
#include "recmesh/protocol/device_commands.hpp"     // IWYU pragma: export
#include "recmesh/protocol/limits.hpp"              // IWYU pragma: export
#include "recmesh/protocol/log_level.hpp"           // IWYU pragma: export
#include "recmesh/protocol/telemetry_messages.hpp"  // IWYU pragma: export
#include "recmesh/protocol/timestamp.hpp"           // IWYU pragma: export
#include "recmesh/protocol/uuid.hpp"                // IWYU pragma: export
