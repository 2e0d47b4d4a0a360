#include "recmesh/mqtt/wire_codec.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

// The test vectors of docs/protocol/mqtt-wire.md, byte for byte, and the broker input a client
// must refuse.
namespace recmesh::mqtt::wire {
namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (!out.empty()) {
      out += ' ';
    }
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
  return out;
}

std::string bytes(std::string_view hex_text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex_text.size();) {
    if (hex_text[i] == ' ') {
      ++i;
      continue;
    }
    out += static_cast<char>(std::stoi(std::string(hex_text.substr(i, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

DecodeResult decode(std::string_view input, ServerPacket& packet,
                    std::size_t max_packet = kMaxRemainingLength) {
  return decode_server_packet(input, max_packet, packet);
}

std::string_view malformed_reason(std::string_view input,
                                  std::size_t max_packet = kMaxRemainingLength) {
  ServerPacket packet;
  const DecodeResult result = decode(input, packet, max_packet);
  EXPECT_EQ(result.status, DecodeStatus::kMalformed) << hex(input);
  return result.error;
}

TEST(WireCodecTest, ConnectWithLastWillMatchesTheDocumentedVector) {
  std::string out;
  ConnectFields fields;
  fields.client_id = "m1-bridge";
  fields.clean_session = false;
  fields.keepalive_s = 30;
  fields.will = {"/bridge/status", "offline", 1, true};
  append_connect(out, fields);
  EXPECT_EQ(hex(out),
            "10 2e 00 04 4d 51 54 54 04 2c 00 1e 00 09 6d 31 2d 62 72 69 64 67 65 00 0e 2f 62 72 "
            "69 64 67 65 2f 73 74 61 74 75 73 00 07 6f 66 66 6c 69 6e 65");
}

TEST(WireCodecTest, ConnectWithoutWillAndWithCleanSession) {
  std::string out;
  ConnectFields fields;
  fields.client_id = "c";
  fields.clean_session = true;
  fields.keepalive_s = 60;
  append_connect(out, fields);
  EXPECT_EQ(hex(out), "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 63");
}

TEST(WireCodecTest, PacketsAClientSendsMatchTheDocumentedVectors) {
  std::string out;
  append_publish(out, "a/b", "hi", 1, false, false, 10);
  EXPECT_EQ(hex(out), "32 09 00 03 61 2f 62 00 0a 68 69");
  out.clear();
  append_publish(out, "a/b", "hi", 1, true, true, 10);
  EXPECT_EQ(hex(out), "3b 09 00 03 61 2f 62 00 0a 68 69") << "DUP and RETAIN set";
  out.clear();
  append_publish(out, "a/b", "hi", 0, false, true, 0);
  EXPECT_EQ(hex(out), "30 07 00 03 61 2f 62 68 69") << "QoS 0: no packet id, never DUP";
  out.clear();
  append_puback(out, 10);
  EXPECT_EQ(hex(out), "40 02 00 0a");
  out.clear();
  append_subscribe(out, 1, "a/#", 1);
  EXPECT_EQ(hex(out), "82 08 00 01 00 03 61 2f 23 01");
  out.clear();
  append_unsubscribe(out, 2, "a/#");
  EXPECT_EQ(hex(out), "a2 07 00 02 00 03 61 2f 23");
  out.clear();
  append_pingreq(out);
  append_disconnect(out);
  EXPECT_EQ(hex(out), "c0 00 e0 00") << "packets append one after the other";
}

TEST(WireCodecTest, RemainingLengthUsesOneToFourBytes) {
  const struct {
    std::size_t payload;  // with topic "t" at QoS 0: remaining = 3 + payload
    std::string_view header;
  } cases[] = {{124, "30 7f"},         {125, "30 80 01"},        {16380, "30 ff 7f"},
               {16381, "30 80 80 01"}, {2097148, "30 ff ff 7f"}, {2097149, "30 80 80 80 01"}};
  for (const auto& c : cases) {
    std::string out;
    append_publish(out, "t", std::string(c.payload, 'x'), 0, false, false, 0);
    const std::string expected = bytes(c.header);
    EXPECT_EQ(hex(out.substr(0, expected.size())), c.header) << c.payload;
    ServerPacket packet;
    const DecodeResult result = decode(out, packet);
    ASSERT_EQ(result.status, DecodeStatus::kPacket) << c.payload;
    EXPECT_EQ(result.consumed, out.size());
    EXPECT_EQ(packet.payload.size(), c.payload);
  }
}

TEST(WireCodecTest, DecodesWhatABrokerSends) {
  ServerPacket packet;
  std::vector<std::string> inputs;  // the packet's views point into them
  const auto keep = [&inputs](std::string input) -> std::string_view {
    inputs.push_back(std::move(input));
    return inputs.back();
  };
  inputs.reserve(8);
  DecodeResult result = decode(keep(bytes("20 02 01 00")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kConnack);
  EXPECT_TRUE(packet.session_present);
  EXPECT_EQ(packet.return_code, 0);

  result = decode(keep(bytes("20 02 00 05")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_FALSE(packet.session_present);
  EXPECT_EQ(packet.return_code, 5) << "a refusal is a packet; the client decides";

  result = decode(keep(bytes("3b 09 00 03 61 2f 62 00 0a 68 69")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kPublish);
  EXPECT_EQ(packet.topic, "a/b");
  EXPECT_EQ(packet.payload, "hi");
  EXPECT_EQ(packet.qos, 1);
  EXPECT_TRUE(packet.retain);
  EXPECT_TRUE(packet.dup);
  EXPECT_EQ(packet.packet_id, 10);

  result = decode(keep(bytes("30 05 00 03 61 2f 62")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.qos, 0);
  EXPECT_TRUE(packet.payload.empty()) << "an empty payload is a valid message";

  result = decode(keep(bytes("40 02 12 34")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kPuback);
  EXPECT_EQ(packet.packet_id, 0x1234);

  result = decode(keep(bytes("90 04 00 07 01 80")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kSuback);
  EXPECT_EQ(packet.packet_id, 7);
  EXPECT_EQ(hex(packet.granted), "01 80");

  result = decode(keep(bytes("b0 02 00 08")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kUnsuback);

  result = decode(keep(bytes("d0 00")), packet);
  ASSERT_EQ(result.status, DecodeStatus::kPacket);
  EXPECT_EQ(packet.type, PacketType::kPingresp);
  EXPECT_EQ(result.consumed, 2U);
}

TEST(WireCodecTest, AStreamSplitAnywhereDecodesTheSamePacketsInOrder) {
  std::string stream;
  append_publish(stream, "x/1", "first", 1, false, false, 1);
  stream += bytes("40 02 00 09 d0 00");
  append_publish(stream, "x/2", std::string(300, 'p'), 0, false, false, 0);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string received = stream.substr(0, cut);
    std::string types;
    std::size_t offset = 0;
    const auto drain = [&] {
      for (;;) {
        ServerPacket packet;
        const DecodeResult result = decode(std::string_view(received).substr(offset), packet);
        ASSERT_NE(result.status, DecodeStatus::kMalformed) << "cut at " << cut;
        if (result.status == DecodeStatus::kNeedMore) {
          return;
        }
        types += std::to_string(static_cast<int>(packet.type));
        offset += result.consumed;
      }
    };
    drain();
    received += stream.substr(cut);
    drain();
    EXPECT_EQ(types, "34133") << "cut at " << cut;
    EXPECT_EQ(offset, stream.size());
  }
}

TEST(WireCodecTest, NeedsMoreUntilTheWholePacketIsThere) {
  ServerPacket packet;
  EXPECT_EQ(decode("", packet).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode(bytes("30"), packet).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode(bytes("30 80"), packet).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode(bytes("30 80 80 80"), packet).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode(bytes("30 05 00 03 61"), packet).status, DecodeStatus::kNeedMore);
}

TEST(WireCodecTest, RefusesWhatABrokerMustNotSend) {
  EXPECT_EQ(malformed_reason(bytes("30 ff ff ff ff 7f")),
            "remaining length longer than four bytes");
  EXPECT_EQ(malformed_reason(bytes("36 05 00 03 61 2f 62")), "PUBLISH with QoS 3");
  EXPECT_EQ(malformed_reason(bytes("34 07 00 03 61 2f 62 00 01")),
            "PUBLISH with QoS 2 to a QoS 0/1 client");
  EXPECT_EQ(malformed_reason(bytes("30 05 00 03 61 2f 2b")),
            "PUBLISH topic is not a valid topic name")
      << "a wildcard in a topic name";
  EXPECT_EQ(malformed_reason(bytes("30 05 00 03 61 00 62")),
            "PUBLISH topic is not a valid topic name")
      << "U+0000 in a topic name";
  EXPECT_EQ(malformed_reason(bytes("30 04 00 02 c3 28")), "PUBLISH topic is not a valid topic name")
      << "invalid UTF-8";
  EXPECT_EQ(malformed_reason(bytes("30 02 00 00")), "PUBLISH topic is not a valid topic name")
      << "an empty topic name";
  EXPECT_EQ(malformed_reason(bytes("30 03 00 05 61")),
            "PUBLISH shorter than its topic and packet identifier");
  EXPECT_EQ(malformed_reason(bytes("30 01 00")), "PUBLISH shorter than its topic length");
  EXPECT_EQ(malformed_reason(bytes("32 05 00 03 61 2f 62")),
            "PUBLISH shorter than its topic and packet identifier")
      << "QoS 1 without its packet identifier";
  EXPECT_EQ(malformed_reason(bytes("32 07 00 03 61 2f 62 00 00")), "packet identifier 0");
  EXPECT_EQ(malformed_reason(bytes("40 03 00 01 00")),
            "an acknowledgement must have flags 0 and a remaining length of 2");
  EXPECT_EQ(malformed_reason(bytes("40 02 00 00")), "packet identifier 0");
  EXPECT_EQ(malformed_reason(bytes("20 02 02 00")),
            "CONNACK acknowledge flags other than session present");
  EXPECT_EQ(malformed_reason(bytes("20 03 00 00 00")),
            "CONNACK must have flags 0 and a remaining length of 2");
  EXPECT_EQ(malformed_reason(bytes("90 04 00 07 01 03")),
            "SUBACK return code other than 0, 1, 2 or 0x80");
  EXPECT_EQ(malformed_reason(bytes("90 02 00 07")),
            "SUBACK must have flags 0 and at least one return code");
  EXPECT_EQ(malformed_reason(bytes("d0 01 00")), "PINGRESP must be empty with flags 0");
  for (const std::string_view client_only :
       {"10 00", "50 02 00 01", "62 02 00 01", "70 02 00 01", "82 00", "a2 00", "c0 00", "e0 00",
        "00 00", "f0 00"}) {
    EXPECT_EQ(malformed_reason(bytes(client_only)),
              "a packet type a broker does not send to a QoS 0/1 client")
        << client_only;
  }
}

TEST(WireCodecTest, AnOversizePacketIsRefusedFromItsHeaderBeforeItsBodyArrives) {
  EXPECT_EQ(malformed_reason(bytes("30 80 80 80 01"), 1024),
            "packet larger than this client accepts")
      << "a claimed 2 MiB, with no byte of it received";
  ServerPacket packet;
  std::string at_limit;
  append_publish(at_limit, "t", std::string(1021, 'x'), 0, false, false, 0);
  EXPECT_EQ(decode(at_limit, packet, 1024).status, DecodeStatus::kPacket) << "exactly the limit";
}

TEST(WireCodecTest, NameChecksFollowMqtt) {
  EXPECT_TRUE(valid_topic_name("/r1/m1/metrics/x"));
  EXPECT_FALSE(valid_topic_name(""));
  EXPECT_FALSE(valid_topic_name("a/+/b"));
  EXPECT_FALSE(valid_topic_name("a/#"));
  EXPECT_FALSE(valid_topic_name(std::string(65536, 'a')));
  EXPECT_TRUE(valid_topic_filter("a/+/b"));
  EXPECT_TRUE(valid_topic_filter("#"));
  EXPECT_FALSE(valid_topic_filter("a/#/b"));
  EXPECT_FALSE(valid_topic_filter("a/b+"));
  EXPECT_FALSE(valid_utf8_string(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_utf8_string("\xed\xa0\x80"));  // a UTF-16 surrogate
}

// A sequence cut by the end of a name is refused whatever follows the name in memory (libmosquitto
// 2.0.11 alone reads on to complete it: here into continuation bytes that would make it valid).
TEST(WireCodecTest, AMultiByteSequenceCutByTheEndOfANameIsRefused) {
  const std::string memory =
      "`\xe7\x9d\x9d"
      "\xf0\x9f\x98\x80";
  EXPECT_FALSE(valid_utf8_string(std::string_view(memory).substr(0, 2)));
  EXPECT_FALSE(valid_utf8_string(std::string_view(memory).substr(0, 3)));
  EXPECT_TRUE(valid_utf8_string(std::string_view(memory).substr(0, 4)));
  EXPECT_FALSE(valid_utf8_string(std::string_view(memory).substr(4, 3)));
  EXPECT_TRUE(valid_utf8_string(std::string_view(memory).substr(4, 4)));   // U+1F600
  EXPECT_FALSE(valid_utf8_string(std::string_view(memory).substr(3, 1)));  // a continuation byte
  // The fuzzer's find: a PUBLISH whose topic "`\xe7" looked valid through its payload's bytes.
  const std::string publish("\x30\x05\x00\x02\x60\xe7\x9d", 7);
  ServerPacket packet;
  const DecodeResult result = decode_server_packet(publish, 1024, packet);
  EXPECT_EQ(result.status, DecodeStatus::kMalformed);
  EXPECT_EQ(result.error, "PUBLISH topic is not a valid topic name");
}

}  // namespace
}  // namespace recmesh::mqtt::wire
