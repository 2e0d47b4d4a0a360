#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "recmesh/config/schema.hpp"
#include "recmesh/config/tls_client.hpp"
#include "recmesh/log/log_settings.hpp"
#include "recmesh/metrics/http_endpoint.hpp"

#include "bridge/message_store.hpp"

namespace recmesh::bridge {

// What the bridge does with a QoS 1 message when the store is full (docs/bridge.md).
enum class OverflowPolicy {
  kBlock,       // stop reading from the source broker until the store drains (nothing is lost)
  kDropOldest,  // accept it and drop the oldest stored message of the same direction
  kDropNewest,  // acknowledge it and drop it
};

std::string_view to_string(OverflowPolicy policy);

// `recmesh bridge --config F` (docs/bridge.md lists every key).
struct BridgeSettings {
  std::string rec;                            // the member's REC
  std::string member;                         // the member
  config::TlsClientSettings local;            // the local broker's bridge listener (Bridge CA)
  config::TlsClientSettings central;          // the central broker's bridge listener (Bridge CA)
  std::filesystem::path store_path;           // the store-and-forward database (SQLite)
  std::int64_t store_max_messages = 1000000;  // messages held at most
  std::int64_t store_max_bytes = std::int64_t{1} << 30;  // topic + payload bytes held at most
  OverflowPolicy overflow = OverflowPolicy::kBlock;
  StoreSync store_sync = StoreSync::kProcess;
  // How long a QoS 1 message forwarded before it is stored may wait for the far broker's
  // PUBACK; then it is stored, and the source's PUBACK follows the commit. 0: every message is
  // stored before it is forwarded.
  std::chrono::milliseconds store_write_behind{25};
  std::int64_t max_payload_bytes = 262144;  // larger messages are refused and counted
  // QoS 1 forwards awaiting PUBACK, per direction. libmosquitto walks its list of them on every
  // publish and every PUBACK, so a window beyond the link's bandwidth-delay product costs CPU
  // per message and buys nothing (docs/bridge.md, "Tuning").
  std::int64_t max_inflight = 256;
  // How long reading a source pauses while the far broker, connected, keeps the forwarding
  // window full; then the bridge reads on and stores what it reads (back-pressure first).
  std::chrono::milliseconds window_wait{250};
  std::chrono::milliseconds status_interval{10000};  // how often /bridge/status/info is sent
  std::chrono::seconds keepalive{30};
  std::chrono::milliseconds reconnect_initial{500};
  std::chrono::milliseconds reconnect_max{10000};
  log::LogSettings logging;
  metrics::MetricsSettings metrics;

  // bridge_<rec>_<member>, the common name of its Bridge-CA certificate and its client id.
  std::string common_name() const;
};

config::Schema<BridgeSettings> bridge_schema();

}  // namespace recmesh::bridge
