// Untrusted payloads and topic names from brokers: every message decoder and both topic forms
// read the same bytes. Whatever is accepted must encode, decode back to an equal value and
// encode to the same bytes again (canonical encoding is what end-to-end signatures cover).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "recmesh/protocol/bridge_mapping.hpp"
#include "recmesh/protocol/messages.hpp"
#include "recmesh/protocol/topics.hpp"

namespace {

using namespace recmesh::protocol;

template <typename T>
void check_message(std::string_view bytes) {
  auto decoded = T::decode(bytes);
  if (!decoded) {
    return;
  }
  auto encoded = decoded->encode();
  if (!encoded) {
    std::abort();  // accepted but cannot be sent on
  }
  auto again = T::decode(*encoded);
  if (!again || !(*again == *decoded)) {
    std::abort();  // encoding lost or changed something
  }
  auto encoded_again = again->encode();
  if (!encoded_again || *encoded_again != *encoded) {
    std::abort();  // encoding is not canonical
  }
}

void check_topic(TopicForm form, std::string_view bytes) {
  auto topic = parse_topic(form, bytes);
  if (!topic) {
    return;
  }
  auto name = format_topic(*topic);
  if (!name || *name != bytes) {
    std::abort();  // parsing must be the exact inverse of naming
  }
  if (form == TopicForm::kLocal) {
    if (auto central = map_local_to_central("r1", "m1", bytes)) {
      auto parsed = parse_central_topic(*central);
      if (!parsed || parsed->channel != topic->channel) {
        std::abort();  // the bridge must not change what a topic means
      }
    }
  } else if (auto local =
                 map_central_to_local(topic->rec.empty() ? "r1" : topic->rec,
                                      topic->member.empty() ? "m1" : topic->member, bytes)) {
    auto parsed = parse_local_topic(*local);
    if (!parsed || parsed->channel != topic->channel) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_message<MemberControl>(bytes);
  check_message<DeviceCommand>(bytes);
  check_message<DeviceCommandResponse>(bytes);
  check_message<MemberControlResponse>(bytes);
  check_message<StatusInfo>(bytes);
  check_message<DeviceMetrics>(bytes);
  check_message<MemberMetrics>(bytes);
  check_message<DiagnosticReport>(bytes);
  check_message<LogRecord>(bytes);
  check_topic(TopicForm::kLocal, bytes);
  check_topic(TopicForm::kCentral, bytes);
  if (auto t = parse_timestamp(bytes)) {
    if (format_timestamp(*t) != bytes) {
      std::abort();
    }
  }
  if (auto u = Uuid::parse(bytes)) {
    if (u->str() != bytes) {
      std::abort();
    }
  }
  (void)topic_matches_filter(bytes, "/device/pv1/metrics/snapshot");
  (void)topic_matches_filter("/+/+/control/response", bytes);
  return 0;
}
