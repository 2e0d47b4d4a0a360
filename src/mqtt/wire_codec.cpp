#include "recmesh/mqtt/wire_codec.hpp"

#include <mosquitto.h>

namespace recmesh::mqtt::wire {
namespace {

constexpr std::uint8_t kFlagsSubscribe = 0x02;  // SUBSCRIBE and UNSUBSCRIBE: reserved bits 0010
constexpr std::uint8_t kConnectCleanSession = 0x02;
constexpr std::uint8_t kConnectWill = 0x04;
constexpr std::uint8_t kConnectWillRetain = 0x20;
constexpr int kConnectWillQosShift = 3;
constexpr std::uint8_t kProtocolLevel311 = 4;
constexpr std::string_view kProtocolName = "MQTT";
constexpr std::uint8_t kSubackRefused = 0x80;
constexpr std::size_t kMaxLengthBytes = 4;

void append_byte(std::string& out, unsigned value) {
  out.push_back(static_cast<char>(value & 0xffU));
}

void append_u16(std::string& out, std::size_t value) {
  append_byte(out, static_cast<unsigned>(value >> 8));
  append_byte(out, static_cast<unsigned>(value));
}

void append_string(std::string& out, std::string_view text) {
  append_u16(out, text.size());
  out.append(text);
}

void append_fixed_header(std::string& out, PacketType type, unsigned flags, std::size_t remaining) {
  append_byte(out, (static_cast<unsigned>(type) << 4) | flags);
  do {
    unsigned digit = remaining % 128;
    remaining /= 128;
    if (remaining > 0) {
      digit |= 0x80U;
    }
    append_byte(out, digit);
  } while (remaining > 0);
}

std::uint16_t read_u16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(bytes[at]) << 8) |
                                    static_cast<unsigned char>(bytes[at + 1]));
}

DecodeResult malformed(std::string_view why) {
  return {DecodeStatus::kMalformed, 0, why};
}

// The body of a packet whose fixed header is checked: fills `packet` or says what is wrong.
std::string_view decode_body(PacketType type, unsigned flags, std::string_view body,
                             ServerPacket& packet) {
  packet = ServerPacket{};
  packet.type = type;
  const auto only_packet_id = [&]() -> std::string_view {
    if (flags != 0 || body.size() != 2) {
      return "an acknowledgement must have flags 0 and a remaining length of 2";
    }
    packet.packet_id = read_u16(body, 0);
    return packet.packet_id == 0 ? "packet identifier 0" : "";
  };
  switch (type) {
    case PacketType::kConnack:
      if (flags != 0 || body.size() != 2) {
        return "CONNACK must have flags 0 and a remaining length of 2";
      }
      if ((static_cast<unsigned char>(body[0]) & 0xfeU) != 0) {
        return "CONNACK acknowledge flags other than session present";
      }
      packet.session_present = (body[0] & 0x01) != 0;
      packet.return_code = static_cast<std::uint8_t>(body[1]);
      return "";
    case PacketType::kPublish: {
      packet.dup = (flags & 0x08U) != 0;
      packet.qos = static_cast<int>((flags >> 1) & 0x03U);
      packet.retain = (flags & 0x01U) != 0;
      if (packet.qos > 1) {
        return packet.qos == 3 ? "PUBLISH with QoS 3" : "PUBLISH with QoS 2 to a QoS 0/1 client";
      }
      if (body.size() < 2) {
        return "PUBLISH shorter than its topic length";
      }
      const std::size_t topic_length = read_u16(body, 0);
      const std::size_t header = 2 + topic_length + (packet.qos > 0 ? 2 : 0);
      if (body.size() < header) {
        return "PUBLISH shorter than its topic and packet identifier";
      }
      packet.topic = body.substr(2, topic_length);
      if (!valid_topic_name(packet.topic)) {
        return "PUBLISH topic is not a valid topic name";
      }
      if (packet.qos > 0) {
        packet.packet_id = read_u16(body, 2 + topic_length);
        if (packet.packet_id == 0) {
          return "packet identifier 0";
        }
      }
      packet.payload = body.substr(header);
      return "";
    }
    case PacketType::kPuback:
    case PacketType::kUnsuback:
      return only_packet_id();
    case PacketType::kSuback:
      if (flags != 0 || body.size() < 3) {
        return "SUBACK must have flags 0 and at least one return code";
      }
      packet.packet_id = read_u16(body, 0);
      packet.granted = body.substr(2);
      for (const char code : packet.granted) {
        const auto value = static_cast<unsigned char>(code);
        if (value > 2 && value != kSubackRefused) {
          return "SUBACK return code other than 0, 1, 2 or 0x80";
        }
      }
      return packet.packet_id == 0 ? "packet identifier 0" : "";
    case PacketType::kPingresp:
      return flags == 0 && body.empty() ? "" : "PINGRESP must be empty with flags 0";
    default:
      return "a packet type a broker does not send to a QoS 0/1 client";
  }
}

// Whether `text` ends inside a multi-byte UTF-8 sequence. libmosquitto 2.0.11's
// mosquitto_validate_utf8 notices a cut sequence at one position only, and elsewhere reads the
// bytes that follow the text to complete it: past the topic into a packet's payload, or past the
// end of a buffer. Only the last sequence can reach past the end: an earlier one meets the next
// lead byte, not a continuation byte, within the text.
bool ends_in_a_cut_sequence(std::string_view text) {
  constexpr std::size_t kLongestSequence = 4;
  const auto byte_at = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  std::size_t continuations = 0;
  while (continuations < text.size() && continuations < kLongestSequence - 1 &&
         (byte_at(text.size() - 1 - continuations) & 0xc0U) == 0x80U) {
    ++continuations;
  }
  if (continuations == text.size()) {
    return false;  // continuation bytes only (or nothing): refused within the text
  }
  const unsigned lead = byte_at(text.size() - 1 - continuations);
  std::size_t length = 1;
  if ((lead & 0xe0U) == 0xc0U) {
    length = 2;
  } else if ((lead & 0xf0U) == 0xe0U) {
    length = 3;
  } else if ((lead & 0xf8U) == 0xf0U) {
    length = 4;
  }
  return length > continuations + 1;
}

}  // namespace

void append_connect(std::string& out, const ConnectFields& fields) {
  const bool will = !fields.will.topic.empty();
  std::size_t remaining = 2 + kProtocolName.size() + 1 + 1 + 2 + 2 + fields.client_id.size();
  if (will) {
    remaining += 2 + fields.will.topic.size() + 2 + fields.will.message.size();
  }
  append_fixed_header(out, PacketType::kConnect, 0, remaining);
  append_string(out, kProtocolName);
  append_byte(out, kProtocolLevel311);
  unsigned flags = fields.clean_session ? kConnectCleanSession : 0U;
  if (will) {
    flags |= kConnectWill | (static_cast<unsigned>(fields.will.qos) << kConnectWillQosShift);
    if (fields.will.retain) {
      flags |= kConnectWillRetain;
    }
  }
  append_byte(out, flags);
  append_u16(out, fields.keepalive_s);
  append_string(out, fields.client_id);
  if (will) {
    append_string(out, fields.will.topic);
    append_string(out, fields.will.message);
  }
}

void append_publish(std::string& out, std::string_view topic, std::string_view payload, int qos,
                    bool retain, bool dup, std::uint16_t packet_id) {
  const std::size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size();
  unsigned flags = static_cast<unsigned>(qos) << 1;
  if (retain) {
    flags |= 0x01U;
  }
  if (dup && qos > 0) {
    flags |= 0x08U;
  }
  append_fixed_header(out, PacketType::kPublish, flags, remaining);
  append_string(out, topic);
  if (qos > 0) {
    append_u16(out, packet_id);
  }
  out.append(payload);
}

void append_puback(std::string& out, std::uint16_t packet_id) {
  append_fixed_header(out, PacketType::kPuback, 0, 2);
  append_u16(out, packet_id);
}

void append_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter, int qos) {
  append_fixed_header(out, PacketType::kSubscribe, kFlagsSubscribe, 2 + 2 + filter.size() + 1);
  append_u16(out, packet_id);
  append_string(out, filter);
  append_byte(out, static_cast<unsigned>(qos));
}

void append_unsubscribe(std::string& out, std::uint16_t packet_id, std::string_view filter) {
  append_fixed_header(out, PacketType::kUnsubscribe, kFlagsSubscribe, 2 + 2 + filter.size());
  append_u16(out, packet_id);
  append_string(out, filter);
}

void append_pingreq(std::string& out) {
  append_fixed_header(out, PacketType::kPingreq, 0, 0);
}

void append_disconnect(std::string& out) {
  append_fixed_header(out, PacketType::kDisconnect, 0, 0);
}

DecodeResult decode_server_packet(std::string_view input, std::size_t max_packet_bytes,
                                  ServerPacket& packet) {
  if (input.empty()) {
    return {};
  }
  const auto first = static_cast<unsigned char>(input[0]);
  const auto type = static_cast<PacketType>(first >> 4);
  const unsigned flags = first & 0x0fU;
  std::size_t remaining = 0;
  std::size_t multiplier = 1;
  std::size_t at = 1;
  for (;; ++at) {
    if (at > kMaxLengthBytes) {
      return malformed("remaining length longer than four bytes");
    }
    if (at >= input.size()) {
      return {};
    }
    const auto digit = static_cast<unsigned char>(input[at]);
    remaining += (digit & 0x7fU) * multiplier;
    multiplier *= 128;
    if ((digit & 0x80U) == 0) {
      break;
    }
  }
  // A length of more bytes than needed ("0x80 0x00") is accepted, as brokers accept it.
  if (remaining > max_packet_bytes) {
    return malformed("packet larger than this client accepts");
  }
  const std::size_t header = at + 1;
  if (input.size() - header < remaining) {
    return {};
  }
  const std::string_view error = decode_body(type, flags, input.substr(header, remaining), packet);
  if (!error.empty()) {
    return malformed(error);
  }
  return {DecodeStatus::kPacket, header + remaining, {}};
}

bool valid_utf8_string(std::string_view text) {
  return text.size() <= 65535 && text.find('\0') == std::string_view::npos &&
         !ends_in_a_cut_sequence(text) &&
         mosquitto_validate_utf8(text.data(), static_cast<int>(text.size())) == MOSQ_ERR_SUCCESS;
}

bool valid_topic_name(std::string_view topic) {
  return !topic.empty() && valid_utf8_string(topic) &&
         mosquitto_pub_topic_check2(topic.data(), topic.size()) == MOSQ_ERR_SUCCESS;
}

bool valid_topic_filter(std::string_view filter) {
  return !filter.empty() && valid_utf8_string(filter) &&
         mosquitto_sub_topic_check2(filter.data(), filter.size()) == MOSQ_ERR_SUCCESS;
}

}  // namespace recmesh::mqtt::wire
