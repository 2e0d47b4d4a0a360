#include "bridge/bridge_settings.hpp"

#include "recmesh/core/identifier.hpp"
#include "recmesh/daemon/daemon_runner.hpp"

namespace recmesh::bridge {

std::string_view to_string(OverflowPolicy policy) {
  switch (policy) {
    case OverflowPolicy::kBlock:
      return "block";
    case OverflowPolicy::kDropOldest:
      return "drop-oldest";
    case OverflowPolicy::kDropNewest:
      return "drop-newest";
  }
  return "unknown";
}

std::string BridgeSettings::common_name() const {
  return "bridge_" + rec + "_" + member;
}

config::Schema<BridgeSettings> bridge_schema() {
  using namespace std::chrono_literals;
  using S = BridgeSettings;
  config::Schema<S> s;
  s.field("rec", &S::rec, "REC of the member this bridge serves").required().non_empty();
  s.field("member", &S::member, "Member this bridge serves").required().non_empty();
  s.block("local", &S::local, config::tls_client_schema());
  s.block("central", &S::central, config::tls_client_schema());
  s.field("store.path", &S::store_path,
          "Store-and-forward database (SQLite, WAL); relative to this file")
      .required()
      .non_empty();
  s.field("store.max_messages", &S::store_max_messages, "Messages the store holds at most")
      .range(100, 100000000);
  s.field("store.max_bytes", &S::store_max_bytes, "Topic and payload bytes the store holds at most")
      .range(std::int64_t{1} << 16, std::int64_t{1} << 36);
  s.field("store.overflow", &S::overflow,
          "What a full store does: block reading the source, or drop and count",
          {{"block", OverflowPolicy::kBlock},
           {"drop-oldest", OverflowPolicy::kDropOldest},
           {"drop-newest", OverflowPolicy::kDropNewest}});
  s.field("store.sync", &S::store_sync,
          "process: a stored message survives a crash of the bridge; power: also of the "
          "machine (one fsync per commit)",
          {{"process", StoreSync::kProcess}, {"power", StoreSync::kPower}});
  s.field("store.write_behind", &S::store_write_behind,
          "How long a message forwarded at once may wait for the far broker's acknowledgement "
          "before it is stored; its source is acknowledged only once it is either. 0: store "
          "every message before forwarding it")
      .range(0ms, 60000ms);
  s.field("max_payload_bytes", &S::max_payload_bytes,
          "Larger messages are refused, logged and counted, never forwarded")
      .range(1024, 268435455);
  s.field("max_inflight", &S::max_inflight,
          "QoS 1 messages forwarded and awaiting PUBACK, per direction")
      .range(1, 20000);
  s.field("window_wait", &S::window_wait,
          "How long reading a source pauses while the far broker, connected, keeps the "
          "forwarding window full, before the bridge reads on and stores what it reads. 0: "
          "store at once")
      .range(0ms, 60000ms);
  s.field("status_interval", &S::status_interval,
          "How often the counters are published on the status info topics and logged")
      .range(100ms, 1h);
  s.field("keepalive", &S::keepalive, "MQTT keepalive towards both brokers").range(5s, 3600s);
  s.field("reconnect.initial", &S::reconnect_initial, "First delay before reconnecting")
      .range(10ms, 60000ms);
  s.field("reconnect.max", &S::reconnect_max, "Longest delay between reconnection attempts")
      .range(10ms, 600000ms);
  daemon::add_common_blocks(s);
  s.validate([](const S& settings, config::Validation& v) {
    if (!is_valid_identifier(settings.rec)) {
      v.fail("rec", "must be an ID: [a-z0-9][a-z0-9-]{0,31}");
    }
    if (!is_valid_identifier(settings.member)) {
      v.fail("member", "must be an ID: [a-z0-9][a-z0-9-]{0,31}");
    }
    if (settings.reconnect_max < settings.reconnect_initial) {
      v.fail("reconnect.max", "must not be shorter than reconnect.initial");
    }
  });
  return s;
}

}  // namespace recmesh::bridge
