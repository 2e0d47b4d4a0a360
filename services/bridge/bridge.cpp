#include "bridge/bridge.hpp"

#include <algorithm>
#include <malloc.h>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/daemon/daemon_runner.hpp"
#include "recmesh/protocol/telemetry_messages.hpp"

namespace recmesh::bridge {
namespace {

// The help text of each labelled metric, registered once per label value.
constexpr const char* kDroppedHelp = "Messages lost by policy, by reason";
constexpr const char* kRejectedHelp = "Messages refused as bad input, by reason";
constexpr const char* kReconnectsHelp = "Connections made again after the first, by broker";
constexpr const char* kConnectedHelp = "1 while connected to the broker";

using protocol::BridgeDirection;
using namespace std::chrono_literals;

constexpr std::string_view kLocalStatusTopic = "/bridge/status";
constexpr auto kLogInterval = 10s;
// Reading resumes once the store has drained below this share of its limits.
constexpr double kResumeShare = 0.9;
// The clients' own queues only ever hold what the bridge hands them within max_inflight, the
// status flag and the status info.
constexpr std::size_t kClientQueueSlack = 16;
// Topics whose mapping each side's cache keeps (a member has a few dozen in use).
constexpr std::size_t kMappedTopics = 4096;
// The longest a removal waits for a commit when no batch of appends carries it.
constexpr auto kRemovalCommitDelay = 100ms;
constexpr int kKeptFreeHeapBytes = 32 * 1024 * 1024;  // run_bridge(): heap the process keeps
constexpr int kHeapGrowthBytes = 1024 * 1024;

std::string info_topic(std::string_view status_topic) {
  return std::string(status_topic) + "/info";
}

}  // namespace

Bridge::Bridge(mqtt::EventLoop& loop, BridgeSettings settings, metrics::Registry& registry)
    : loop_(loop),
      settings_(std::move(settings)),
      log_("bridge"),
      store_(settings_.store_path, settings_.store_sync),
      local_topics_(kMappedTopics),
      central_topics_(kMappedTopics),
      dropped_overflow_(
          registry.counter("recmesh_bridge_dropped_total", kDroppedHelp, {{"reason", "overflow"}})),
      dropped_qos0_(registry.counter("recmesh_bridge_dropped_total", kDroppedHelp,
                                     {{"reason", "qos0-far-side-down"}})),
      rejected_oversize_(registry.counter("recmesh_bridge_rejected_total", kRejectedHelp,
                                          {{"reason", "oversize"}})),
      rejected_topic_(
          registry.counter("recmesh_bridge_rejected_total", kRejectedHelp, {{"reason", "topic"}})),
      reconnects_local_(registry.counter("recmesh_bridge_reconnects_total", kReconnectsHelp,
                                         {{"broker", "local"}})),
      reconnects_central_(registry.counter("recmesh_bridge_reconnects_total", kReconnectsHelp,
                                           {{"broker", "central"}})),
      commits_(registry.counter("recmesh_bridge_store_commits_total",
                                "Store transactions committed (one per batch of messages)")),
      depth_gauge_(registry.gauge(
          "recmesh_bridge_queue_depth",
          "Messages held awaiting the far broker: stored, or forwarded and not yet stored")),
      bytes_gauge_(registry.gauge("recmesh_bridge_queue_bytes",
                                  "Topic and payload bytes held in the store")),
      blocked_gauge_(registry.gauge("recmesh_bridge_blocked",
                                    "1 while reading is paused because the store is full")),
      local_connected_(
          registry.gauge("recmesh_bridge_connected", kConnectedHelp, {{"broker", "local"}})),
      central_connected_(
          registry.gauge("recmesh_bridge_connected", kConnectedHelp, {{"broker", "central"}})),
      rejected_log_(log_, log::Level::kWarn, "message refused", kLogInterval),
      dropped_log_(log_, log::Level::kWarn, "message dropped by the overflow policy", kLogInterval),
      forward_log_(log_, log::Level::kWarn, "cannot forward now; kept in the store", kLogInterval) {
  for (Route* route : {&out_, &in_}) {
    const std::string direction(protocol::to_string(route->direction));
    route->forwarded_metric = &registry.counter(
        "recmesh_bridge_forwarded_total", "Messages the far broker acknowledged, by direction",
        {{"direction", direction}});
    route->buffered_metric = &registry.counter("recmesh_bridge_buffered_total",
                                               "QoS 1 messages written to the store, by direction",
                                               {{"direction", direction}});
  }
  const std::optional<std::string> central_status =
      protocol::map_local_to_central(settings_.rec, settings_.member, kLocalStatusTopic);
  if (!central_status) {
    throw Error(ErrorCode::kInvalidArgument, "rec and member must be IDs");
  }
  local_info_topic_ = info_topic(kLocalStatusTopic);
  central_info_topic_ = info_topic(*central_status);
  local_ = make_client(Side::kLocal);
  central_ = make_client(Side::kCentral);
}

Bridge::~Bridge() {
  for (const mqtt::EventLoop::TimerId timer :
       {info_timer_, commit_timer_, durable_timer_, out_.spill_timer, in_.spill_timer}) {
    if (timer != 0) {
      loop_.cancel_timer(timer);
    }
  }
}

std::unique_ptr<mqtt::BatchedMqttClient> Bridge::make_client(Side side) {
  const config::TlsClientSettings& tls = side == Side::kLocal ? settings_.local : settings_.central;
  mqtt::MqttClientOptions options;
  options.host = tls.host;
  options.port = tls.port;
  options.client_id = settings_.common_name();
  options.cafile = tls.cafile;
  options.certfile = tls.certfile;
  options.keyfile = tls.keyfile;
  if (!tls.key_passphrase_file.empty()) {
    options.key_passphrase = std::make_shared<const Secret>(config::read_key_passphrase(tls));
  }
  options.keepalive = settings_.keepalive;
  options.clean_session = false;
  options.status_topic =
      side == Side::kLocal
          ? std::string(kLocalStatusTopic)
          : *protocol::map_local_to_central(settings_.rec, settings_.member, kLocalStatusTopic);
  options.reconnect.initial = settings_.reconnect_initial;
  options.reconnect.max = settings_.reconnect_max;
  options.reconnect.stable_after = 5s;
  options.stop_timeout = 2s;
  options.max_inflight_messages = static_cast<int>(settings_.max_inflight);
  options.max_pending_messages =
      static_cast<std::size_t>(settings_.max_inflight) + kClientQueueSlack;
  options.acknowledge_after_handling = true;

  mqtt::MqttClientCallbacks callbacks;
  callbacks.on_connect = [this, side] { on_connect(side); };
  callbacks.on_disconnect = [this, side](const Status& reason) {
    (side == Side::kLocal ? local_connected_ : central_connected_).set(0);
    log_.warn("connection lost; messages for it stay in the store",
              {{"broker", side == Side::kLocal ? "local" : "central"}, {"reason", reason.message}});
    // What it had not acknowledged yet will not be soon: store it, and acknowledge its sources.
    make_durable();
    update_reading();  // a source waiting for this broker's window reads on, into the store
  };
  callbacks.on_message = [this, side](const mqtt::IncomingMessage& message) {
    on_message(side, message);
  };
  callbacks.on_messages_received = [this] { on_messages_received(); };
  callbacks.on_delivered = [this, side](mqtt::MessageId id) { on_delivered(side, id); };
  callbacks.on_stopped = [this] { note_stopped(); };
  auto client =
      std::make_unique<mqtt::BatchedMqttClient>(loop_, std::move(options), std::move(callbacks));
  if (side == Side::kLocal) {
    for (const protocol::BridgeRule& rule : protocol::bridge_rules()) {
      if (rule.direction == BridgeDirection::kOut) {
        const Result<mqtt::Done> done = client->subscribe(rule.local, rule.qos);
        if (!done) {
          throw Error(ErrorCode::kInternal, done.status().message);
        }
      }
    }
  } else {
    for (const protocol::BridgeRule& rule : protocol::bridge_rules()) {
      if (rule.direction == BridgeDirection::kIn) {
        const Result<mqtt::Done> done = client->subscribe(
            protocol::central_filter(rule, settings_.rec, settings_.member), rule.qos);
        if (!done) {
          throw Error(ErrorCode::kInternal, done.status().message);
        }
      }
    }
  }
  return client;
}

mqtt::BatchedMqttClient& Bridge::client(Side side) {
  return side == Side::kLocal ? *local_ : *central_;
}

Bridge::Route& Bridge::route_to(Side destination) {
  return destination == Side::kCentral ? out_ : in_;
}

void Bridge::start() {
  for (StoredMessage& message : store_.load_all()) {
    Route& route = message.direction == BridgeDirection::kIn ? in_ : out_;
    depth_ += 1;
    bytes_ += message.size();
    route.unsent.push_back(std::move(message));
  }
  if (depth_ > 0) {
    log_.info("resuming with stored messages", {{"queue_depth", depth_}, {"queue_bytes", bytes_}});
  }
  clients_running_ = 2;
  update_blocking();
  local_->start();
  central_->start();
  schedule_info();
  log_.info("bridge started",
            {{"client_id", settings_.common_name()},
             {"local", fmt::format("{}:{}", settings_.local.host, settings_.local.port)},
             {"central", fmt::format("{}:{}", settings_.central.host, settings_.central.port)},
             {"overflow", to_string(settings_.overflow)}});
}

void Bridge::on_connect(Side side) {
  if (side == Side::kLocal) {
    local_connected_.set(1);
    if (local_->stats().connections > 1) {
      reconnects_local_.increment();
    }
  } else {
    central_connected_.set(1);
    if (central_->stats().connections > 1) {
      reconnects_central_.increment();
    }
  }
  log_.info("connected", {{"broker", side == Side::kLocal ? "local" : "central"}});
  publish_info();
  pump(route_to(side));
  update_reading();
}

void Bridge::reject(std::string_view reason, std::string_view topic, std::size_t size) {
  (reason == "oversize" ? rejected_oversize_ : rejected_topic_).increment();
  // The topic came from the network: only its length and a bounded, printable prefix.
  std::string shown(topic.substr(0, 128));
  std::replace_if(
      shown.begin(), shown.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  rejected_log_.log({{"reason", reason}, {"topic", shown}, {"bytes", size}});
}

void Bridge::drop(std::string_view reason, std::uint64_t count) {
  (reason == "overflow" ? dropped_overflow_ : dropped_qos0_).increment(count);
  dropped_log_.log({{"reason", reason}, {"policy", to_string(settings_.overflow)}});
}

bool Bridge::store_full() const {
  return depth_ >= static_cast<std::uint64_t>(settings_.store_max_messages) ||
         bytes_ >= static_cast<std::uint64_t>(settings_.store_max_bytes);
}

void Bridge::on_message(Side side, const mqtt::IncomingMessage& message) {
  if (failed_) {
    return;
  }
  if (message.payload.size() > static_cast<std::size_t>(settings_.max_payload_bytes)) {
    reject("oversize", message.topic, message.payload.size());
    return;
  }
  const TopicMapCache::Entry* mapped = map_topic(side, message.topic);
  if (mapped == nullptr) {
    reject("topic", message.topic, message.payload.size());
    return;
  }
  const protocol::BridgeRule* rule = mapped->rule;
  const std::string& target = mapped->target;
  const Side destination = side == Side::kLocal ? Side::kCentral : Side::kLocal;
  Route& route = route_to(destination);
  // MQTT 3.1.1 clears the retain flag of live messages, so the mapping decides: status flags
  // and status info are retained by convention (SPEC §4.1), every other flow never is.
  const bool retain = rule->retain;
  if (message.qos == 0) {
    mqtt::BatchedMqttClient& far = client(destination);
    if (!far.connected() || !far.publish(target, message.payload, 0, retain)) {
      drop("qos0-far-side-down");
      return;
    }
    ++route.forwarded;
    route.forwarded_metric->increment();
    return;
  }
  if (store_full()) {
    if (settings_.overflow == OverflowPolicy::kDropNewest) {
      drop("overflow");
      return;
    }
    if (settings_.overflow == OverflowPolicy::kDropOldest) {
      if (route.unsent.empty()) {
        drop("overflow");  // everything held is on the wire already: the newest gives way
        return;
      }
      const StoredMessage& oldest = route.unsent.front();
      try {
        store_.remove(oldest.id);
      } catch (const std::exception& e) {
        fail_stop(e);
        return;
      }
      release(oldest);
      route.unsent.pop_front();
      drop("overflow");
    }
    // kBlock: the message is read already, so it is kept; reading stops below.
  }
  StoredMessage stored;
  stored.direction = route.direction;
  stored.topic = target;
  stored.payload.assign(message.payload);
  stored.qos = 1;
  stored.retain = retain;
  if (forward_at_once(route)) {
    const Result<mqtt::MessageId> sent =
        client(destination).publish(stored.topic, stored.payload, 1, retain);
    if (sent) {
      // Written when on_messages_received pumps; stored only if not acknowledged in time.
      depth_ += 1;
      bytes_ += stored.size();
      route.in_flight.emplace(*sent, std::move(stored));
      route.unsafe.add(*sent, loop_.now());
      arm_write_behind();
      if (route.in_flight.size() >= static_cast<std::size_t>(settings_.max_inflight)) {
        // The window is full: the source stops here, mid-read, and keeps the rest of what
        // was read for when the window opens, instead of it going through the store.
        update_reading();
      }
      return;
    }
  }
  try {
    // Its predecessors first, so that the store keeps the order of arrival.
    stage_unsafe(route);
    store_.append(stored);
  } catch (const std::exception& e) {
    fail_stop(e);
    return;
  }
  route.buffered_metric->increment();
  ++counters_.buffered;
  hold(route, std::move(stored));
}

const TopicMapCache::Entry* Bridge::map_topic(Side side, std::string_view topic) {
  TopicMapCache& cache = side == Side::kLocal ? local_topics_ : central_topics_;
  if (const TopicMapCache::Entry* known = cache.find(topic)) {
    return known;
  }
  const protocol::BridgeRule* rule = nullptr;
  std::optional<std::string> target;
  if (side == Side::kLocal) {
    rule = protocol::find_local_rule(topic);
    if (rule != nullptr && rule->direction == BridgeDirection::kOut) {
      target = protocol::map_local_to_central(settings_.rec, settings_.member, topic);
    }
  } else {
    rule = protocol::find_central_rule(settings_.rec, settings_.member, topic);
    if (rule != nullptr && rule->direction == BridgeDirection::kIn) {
      target = protocol::map_central_to_local(settings_.rec, settings_.member, topic);
    }
  }
  if (!target) {
    return nullptr;
  }
  return &cache.insert(topic, {rule, std::move(*target)});
}

bool Bridge::forward_at_once(const Route& route) const {
  const mqtt::BatchedMqttClient& far =
      route.direction == BridgeDirection::kOut ? *central_ : *local_;
  return settings_.store_write_behind.count() > 0 && !stopping_ && route.unsent.empty() &&
         route.in_flight.size() < static_cast<std::size_t>(settings_.max_inflight) &&
         far.connected();
}

void Bridge::stage_unsafe(Route& route) {
  stage_unsafe_until(route, std::nullopt);
}

bool Bridge::stage_unsafe_until(Route& route,
                                std::optional<mqtt::MonotonicClock::TimePoint> forwarded_by) {
  bool staged = false;
  // In the order they were forwarded, so that the store keeps the order of arrival.
  for (const mqtt::MessageId id : route.unsafe.take(forwarded_by)) {
    const auto it = route.in_flight.find(id);
    if (it == route.in_flight.end() || it->second.id != 0) {
      continue;  // not in flight, or stored: neither happens to an unsafe message
    }
    store_.append(it->second);  // sets its id: safe once committed
    route.buffered_metric->increment();
    ++counters_.buffered;
    staged = true;
  }
  return staged;
}

void Bridge::arm_write_behind() {
  if (durable_timer_ != 0) {
    return;
  }
  std::optional<mqtt::MonotonicClock::TimePoint> oldest;
  for (const Route* route : {&out_, &in_}) {
    const auto forwarded = route->unsafe.oldest();
    if (forwarded && (!oldest || *forwarded < *oldest)) {
      oldest = forwarded;
    }
  }
  if (!oldest) {
    return;
  }
  const auto delay = std::max(mqtt::MonotonicClock::Duration::zero(),
                              *oldest + settings_.store_write_behind - loop_.now());
  durable_timer_ =
      loop_.add_timer(std::chrono::duration_cast<mqtt::MonotonicClock::Duration>(delay), [this] {
        durable_timer_ = 0;
        on_write_behind_due();
      });
}

void Bridge::on_write_behind_due() {
  // Only what the far broker has left unacknowledged for store.write_behind is stored: in a
  // steady stream some message is always in flight, and storing whatever happens to be would
  // put a share of every stream through the store. The source's PUBACKs stay held until the
  // younger ones are acknowledged or old enough to be stored in turn.
  const auto forwarded_by = loop_.now() - settings_.store_write_behind;
  bool staged = false;
  try {
    for (Route* route : {&out_, &in_}) {
      staged = stage_unsafe_until(*route, forwarded_by) || staged;
    }
  } catch (const std::exception& e) {
    fail_stop(e);
    return;
  }
  if (staged) {
    if (!commit_now()) {
      return;
    }
    update_holds();
  }
  arm_write_behind();
}

bool Bridge::make_durable() {
  if (durable_timer_ != 0) {
    loop_.cancel_timer(durable_timer_);
    durable_timer_ = 0;
  }
  if (failed_) {
    return false;
  }
  try {
    stage_unsafe(out_);
    stage_unsafe(in_);
  } catch (const std::exception& e) {
    fail_stop(e);
    return false;
  }
  if (!commit_now()) {
    return false;
  }
  update_holds();
  return true;
}

void Bridge::update_holds() {
  // A source's PUBACKs wait while any message read from it is neither stored nor acknowledged.
  local_->hold_writes(!out_.unsafe.empty());
  central_->hold_writes(!in_.unsafe.empty());
  if (out_.unsafe.empty() && in_.unsafe.empty() && durable_timer_ != 0) {
    loop_.cancel_timer(durable_timer_);
    durable_timer_ = 0;
  }
}

bool Bridge::commit_now() {
  if (!store_.has_staged()) {
    return !failed_;
  }
  try {
    store_.commit();
  } catch (const std::exception& e) {
    fail_stop(e);
    return false;
  }
  commits_.increment();
  return true;
}

void Bridge::fail_stop(const std::exception& e) {
  if (failed_) {
    return;
  }
  failed_ = true;
  // Dropping both connections without DISCONNECT discards the PUBACKs the clients have queued
  // but not written, so the brokers send again what the store could not keep.
  log_.critical("the store failed; stopping without acknowledging what it could not keep",
                {{"error", e.what()}});
  local_->abort();
  central_->abort();
  loop_.stop();
}

void Bridge::hold(Route& route, StoredMessage message) {
  depth_ += 1;
  bytes_ += message.size();
  route.unsent.push_back(std::move(message));
}

void Bridge::release(const StoredMessage& message) {
  depth_ -= 1;
  bytes_ -= message.size();
}

void Bridge::on_messages_received() {
  if (failed_) {
    return;
  }
  // Before the clients write the PUBACKs of this batch.
  if (!commit_now()) {
    return;
  }
  update_holds();
  update_blocking();
  pump_all();
}

void Bridge::on_delivered(Side side, mqtt::MessageId id) {
  Route& route = route_to(side);
  const auto it = route.in_flight.find(id);
  if (it == route.in_flight.end()) {
    return;  // the status info, which is not stored
  }
  const bool stored = it->second.id != 0;
  if (stored) {
    try {
      store_.remove(it->second.id);
    } catch (const std::exception& e) {
      fail_stop(e);
      return;
    }
  } else {
    route.unsafe.made_safe(id);  // safe now without ever being stored
  }
  release(it->second);
  route.in_flight.erase(it);
  ++route.forwarded;
  route.forwarded_metric->increment();
  if (stored) {
    schedule_commit();
  }
  update_holds();
  update_blocking();
  pump(route);
}

void Bridge::schedule_commit() {
  if (commit_timer_ != 0) {
    return;
  }
  // Removals need not be durable at once (a message sent again is a duplicate, not a loss):
  // they ride with the next batch of appends, or are committed by this timer when the stream
  // stops, so that a PUBACK costs no commit of its own.
  commit_timer_ = loop_.add_timer(kRemovalCommitDelay, [this] {
    commit_timer_ = 0;
    commit_now();
  });
}

void Bridge::pump_all() {
  pump(out_);
  pump(in_);
}

void Bridge::pump(Route& route) {
  mqtt::BatchedMqttClient& far =
      client(route.direction == BridgeDirection::kOut ? Side::kCentral : Side::kLocal);
  if (stopping_ || !far.connected()) {
    return;
  }
  // The far broker is the source of the other direction: what waits for it must not wait for
  // that direction's write-behind.
  const Route& reverse = &route == &out_ ? in_ : out_;
  if (!route.unsent.empty() && !reverse.unsafe.empty() && !make_durable()) {
    return;
  }
  // Never forward what a crash could still undo. (Staged removals may wait: a crash before
  // their commit sends a message twice, never zero times.)
  if (store_.has_staged_appends() && !commit_now()) {
    return;
  }
  while (!route.unsent.empty() &&
         route.in_flight.size() < static_cast<std::size_t>(settings_.max_inflight)) {
    StoredMessage& next = route.unsent.front();
    const Result<mqtt::MessageId> sent = far.publish(next.topic, next.payload, 1, next.retain);
    if (!sent) {
      forward_log_.log({{"topic", next.topic}, {"reason", sent.status().message}});
      return;
    }
    route.in_flight.emplace(*sent, std::move(next));
    route.unsent.pop_front();
  }
  far.flush();  // on the wire now, not after the next poll round
}

void Bridge::update_blocking() {
  depth_gauge_.set(static_cast<double>(depth_));
  bytes_gauge_.set(static_cast<double>(bytes_));
  if (settings_.overflow != OverflowPolicy::kBlock) {
    update_reading();
    return;
  }
  bool block = blocked_;
  if (!blocked_ && store_full()) {
    block = true;
  } else if (blocked_ &&
             static_cast<double>(depth_) <
                 kResumeShare * static_cast<double>(settings_.store_max_messages) &&
             static_cast<double>(bytes_) <
                 kResumeShare * static_cast<double>(settings_.store_max_bytes)) {
    block = false;
  }
  if (block == blocked_) {
    update_reading();
    return;
  }
  blocked_ = block;
  blocked_gauge_.set(block ? 1 : 0);
  update_reading();
  if (block) {
    log_.warn("store full: reading paused until it drains",
              {{"queue_depth", depth_},
               {"queue_bytes", bytes_},
               {"local_paused", local_->reading_paused()},
               {"central_paused", central_->reading_paused()}});
  } else {
    log_.info("store drained: reading resumed", {{"queue_depth", depth_}});
  }
}

bool Bridge::window_full(const Route& route) const {
  const mqtt::BatchedMqttClient& far =
      route.direction == BridgeDirection::kOut ? *central_ : *local_;
  const auto window = static_cast<std::size_t>(settings_.max_inflight);
  const std::size_t limit = route.full_since ? window - window / 4 : window;
  return !stopping_ && far.connected() && route.in_flight.size() >= limit;
}

bool Bridge::update_window_wait(Route& route) {
  if (!window_full(route)) {
    route.full_since.reset();
    if (route.spill_timer != 0) {
      loop_.cancel_timer(route.spill_timer);
      route.spill_timer = 0;
    }
    return false;
  }
  const auto now = loop_.now();
  if (!route.full_since) {
    route.full_since = now;
    route.spill_timer = loop_.add_timer(settings_.window_wait, [this, &route] {
      route.spill_timer = 0;
      update_reading();
    });
  }
  return now - *route.full_since < settings_.window_wait;
}

void Bridge::update_reading() {
  // Only the source of a direction with a backlog stops for a full store: the other side must
  // still be read, since the PUBACKs that drain the store arrive there.
  const bool local_paused = (blocked_ && !out_.unsent.empty()) || update_window_wait(out_);
  const bool central_paused = (blocked_ && !in_.unsent.empty()) || update_window_wait(in_);
  local_->pause_reading(local_paused);
  central_->pause_reading(central_paused);
}

BridgeCounters Bridge::counters() const {
  BridgeCounters c = counters_;
  c.forwarded_out = out_.forwarded;
  c.forwarded_in = in_.forwarded;
  c.dropped = dropped_overflow_.value() + dropped_qos0_.value();
  c.rejected = rejected_oversize_.value() + rejected_topic_.value();
  c.reconnects_local = reconnects_local_.value();
  c.reconnects_central = reconnects_central_.value();
  c.queue_depth = depth_;
  c.queue_bytes = bytes_;
  c.blocked = blocked_;
  return c;
}

void Bridge::publish_info() {
  const BridgeCounters c = counters();
  protocol::StatusInfo info;
  info.timestamp =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  info.status = protocol::StatusFlag::kOnline;
  info.fields = nlohmann::json{{"forwarded_out", c.forwarded_out},
                               {"forwarded_in", c.forwarded_in},
                               {"buffered", c.buffered},
                               {"dropped", c.dropped},
                               {"rejected", c.rejected},
                               {"reconnects_local", c.reconnects_local},
                               {"reconnects_central", c.reconnects_central},
                               {"queue_depth", c.queue_depth},
                               {"queue_bytes", c.queue_bytes},
                               {"blocked", c.blocked},
                               {"overflow", to_string(settings_.overflow)}};
  const Result<std::string> payload = info.encode();
  if (!payload) {
    log_.error("cannot encode the status info", {{"reason", payload.status().message}});
    return;
  }
  // Only while connected: a stale info queued for later would say nothing true.
  if (local_->connected()) {
    (void)local_->publish(local_info_topic_, *payload, 1, true);
  }
  if (central_->connected()) {
    (void)central_->publish(central_info_topic_, *payload, 1, true);
  }
}

void Bridge::schedule_info() {
  info_timer_ = loop_.add_timer(settings_.status_interval, [this] {
    info_timer_ = 0;
    if (stopping_) {
      return;
    }
    publish_info();
    const BridgeCounters c = counters();
    log_.info("counters", {{"forwarded_out", c.forwarded_out},
                           {"forwarded_in", c.forwarded_in},
                           {"buffered", c.buffered},
                           {"dropped", c.dropped},
                           {"rejected", c.rejected},
                           {"reconnects_local", c.reconnects_local},
                           {"reconnects_central", c.reconnects_central},
                           {"queue_depth", c.queue_depth},
                           {"blocked", c.blocked}});
    schedule_info();
  });
}

void Bridge::stop(std::function<void()> done) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  on_stopped_ = std::move(done);
  if (info_timer_ != 0) {
    loop_.cancel_timer(info_timer_);
    info_timer_ = 0;
  }
  make_durable();
  local_->stop();
  central_->stop();
}

void Bridge::note_stopped() {
  if (--clients_running_ > 0) {
    return;
  }
  commit_now();
  rejected_log_.flush();
  dropped_log_.flush();
  forward_log_.flush();
  const BridgeCounters c = counters();
  log_.info("bridge stopped", {{"forwarded_out", c.forwarded_out},
                               {"forwarded_in", c.forwarded_in},
                               {"queue_depth", c.queue_depth}});
  if (on_stopped_) {
    std::exchange(on_stopped_, nullptr)();
  }
}

int run_bridge(const BridgeSettings& settings, daemon::DaemonContext& context) {
  // SQLite allocates and frees a statement's savepoint at the top of the heap. With glibc's
  // default trim threshold (128 KiB) every insert into the store then cost a brk() to grow the
  // heap and one to shrink it: a quarter of the bridge's CPU while it stores a stream. The
  // process keeps up to 32 MiB of freed heap instead.
  (void)::mallopt(M_TRIM_THRESHOLD, kKeptFreeHeapBytes);
  (void)::mallopt(M_TOP_PAD, kHeapGrowthBytes);
  mqtt::EventLoop loop;
  Bridge bridge(loop, settings, context.metrics());
  bool stopped = false;
  // The stop callback may run after this function returned: it reaches the loop only while
  // the loop exists.
  struct LoopHandle {
    std::mutex mutex;
    std::function<void()> stop;  // guarded by mutex
  };
  auto handle = std::make_shared<LoopHandle>();
  handle->stop = [&loop, &bridge, &stopped] {
    loop.post([&loop, &bridge, &stopped] {
      bridge.stop([&loop, &stopped] {
        stopped = true;
        loop.stop();
      });
    });
  };
  context.on_stop([handle] {
    std::lock_guard lock(handle->mutex);
    if (handle->stop) {
      handle->stop();
    }
  });
  loop.post([&bridge] { bridge.start(); });
  loop.run();
  {
    std::lock_guard lock(handle->mutex);
    handle->stop = nullptr;
  }
  return stopped ? daemon::kExitOk : daemon::kExitFailed;
}

}  // namespace recmesh::bridge
