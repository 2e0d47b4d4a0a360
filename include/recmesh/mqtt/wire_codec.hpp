#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// MQTT 3.1.1 packets (OASIS standard, 2014) as a client sends and receives them, QoS 0 and 1:
// what BatchedMqttClient writes into one buffer per loop round and parses out of whatever TLS
// handed it. Encoding appends to a caller's buffer; decoding takes the next packet from the
// front of a byte string without copying it. Wire format and test vectors:
// docs/protocol/mqtt-wire.md.
namespace recmesh::mqtt::wire {

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// The largest remaining length MQTT can express (four length bytes).
inline constexpr std::size_t kMaxRemainingLength = 268435455;

struct Will {
  std::string_view topic;  // empty: no Last Will
  std::string_view message;
  int qos = 1;
  bool retain = true;
};

struct ConnectFields {
  std::string_view client_id;
  bool clean_session = false;
  std::uint16_t keepalive_s = 30;
  Will will;
};

// Each appends one packet to `out`. Fields are taken as valid (topics, QoS 0..1, sizes within
// MQTT's limits): the client checks them where a caller hands them over.
void append_connect(std::string& out, const ConnectFields& fields);
void append_publish(std::string& out, std::string_view topic, std::string_view payload, int qos,
                    bool retain, bool dup, std::uint16_t packet_id);
void append_puback(std::string& out, std::uint16_t packet_id);
void append_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter, int qos);
void append_unsubscribe(std::string& out, std::uint16_t packet_id, std::string_view filter);
void append_pingreq(std::string& out);
void append_disconnect(std::string& out);

// A packet a broker sent to a client; the views point into the decoded input.
struct ServerPacket {
  PacketType type = PacketType::kPingresp;
  std::uint16_t packet_id = 0;  // PUBLISH (QoS 1), PUBACK, SUBACK, UNSUBACK
  // CONNACK
  bool session_present = false;
  std::uint8_t return_code = 0;
  // PUBLISH
  std::string_view topic;
  std::string_view payload;
  int qos = 0;
  bool retain = false;
  bool dup = false;
  // SUBACK: one granted QoS (or 0x80, refused) per filter of the SUBSCRIBE
  std::string_view granted;
};

enum class DecodeStatus {
  kPacket,     // `packet` holds the next packet; `consumed` bytes of the input were it
  kNeedMore,   // the input holds only part of the next packet
  kMalformed,  // the input breaks MQTT 3.1.1 for a client: the connection must be closed
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  std::size_t consumed = 0;
  std::string_view error;  // kMalformed: what is wrong, a static string
};

// Decodes the packet at the front of `input`. Packets a broker never sends to a 3.1.1 client
// that publishes and subscribes at QoS 0 and 1 (CONNECT, SUBSCRIBE, PINGREQ, DISCONNECT, the
// QoS 2 exchange, a QoS 2 PUBLISH) are malformed here, and so is a packet whose remaining
// length exceeds `max_packet_bytes`, as soon as its fixed header says so.
DecodeResult decode_server_packet(std::string_view input, std::size_t max_packet_bytes,
                                  ServerPacket& packet);

// MQTT's checks of names (section 4.7): UTF-8 without U+0000, 1..65535 bytes; a topic name
// without wildcards; a filter whose '#' is last and whose wildcards fill whole levels.
bool valid_utf8_string(std::string_view text);
bool valid_topic_name(std::string_view topic);
bool valid_topic_filter(std::string_view filter);

}  // namespace recmesh::mqtt::wire
