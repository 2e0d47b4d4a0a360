#include "gateway/outbox.hpp"

#include <string>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

#include "temp_dir.hpp"

namespace recmesh::gateway {
namespace {

TEST(Outbox, KeepsOrderAcrossReopeningAndForgetsWhatWasDelivered) {
  testing::TempDir tmp;
  const auto path = tmp / "gw.db";
  {
    Outbox outbox(path, 10);
    EXPECT_EQ(outbox.push("/platform/metrics/aggregate", "{\"n\":1}"), 0u);
    EXPECT_EQ(outbox.push("/platform/control/response", "{\"n\":2}"), 0u);
    EXPECT_EQ(outbox.push("/platform/logs/ERROR", std::string("bin\0ary", 7)), 0u);
    const auto first = outbox.after(0, 1);
    ASSERT_EQ(first.size(), 1u);
    outbox.remove(first[0].id);
    outbox.remove(first[0].id);  // twice: ignored
    outbox.remove(12345);        // unknown: ignored
    EXPECT_EQ(outbox.size(), 2u);
  }
  Outbox outbox(path, 10);
  EXPECT_EQ(outbox.size(), 2u);
  const auto rest = outbox.after(0, 10);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].topic, "/platform/control/response");
  EXPECT_EQ(rest[0].payload, "{\"n\":2}");
  EXPECT_EQ(rest[1].payload, std::string("bin\0ary", 7));
  EXPECT_LT(rest[0].id, rest[1].id);
  EXPECT_TRUE(outbox.after(rest[1].id, 10).empty());
  EXPECT_EQ(outbox.after(rest[0].id, 10).size(), 1u);
}

TEST(Outbox, DropsTheOldestWhenFull) {
  testing::TempDir tmp;
  Outbox outbox(tmp / "gw.db", 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(outbox.push("/t", std::to_string(i)), 0u);
  }
  EXPECT_EQ(outbox.push("/t", "3"), 1u);
  EXPECT_EQ(outbox.push("/t", "4"), 1u);
  EXPECT_EQ(outbox.size(), 3u);
  const auto held = outbox.after(0, 10);
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(held[0].payload, "2");
  EXPECT_EQ(held[2].payload, "4");
  // A smaller capacity after a restart drops down to it at the next push.
  Outbox smaller(tmp / "gw.db", 1);
  EXPECT_EQ(smaller.push("/t", "5"), 3u);
  EXPECT_EQ(smaller.after(0, 10).at(0).payload, "5");
  EXPECT_THROW(Outbox(tmp / "gw.db", 0), Error);
}

// With end-to-end protection a row stays until the engine's ack confirms it (docs/protocol/
// e2e.md §6.1); its ID is the message's end-to-end ID, above the clock of the database's birth.
TEST(Outbox, ForgetsExactlyWhatTheEnginesAckConfirms) {
  testing::TempDir tmp;
  Outbox outbox(tmp / "gw.db", 100);
  EXPECT_EQ(outbox.last_id(), outbox.last_id());
  const std::uint64_t born = outbox.last_id();
  EXPECT_GT(born, std::uint64_t{1'700'000'000'000'000});  // microseconds since 1970
  for (int i = 0; i < 5; ++i) {
    outbox.push("/platform/metrics/aggregate", std::to_string(i), i == 4);
  }
  const auto rows = outbox.after(0, 10);
  ASSERT_EQ(rows.size(), 5U);
  EXPECT_EQ(static_cast<std::uint64_t>(rows[0].id), born + 1);
  EXPECT_TRUE(rows[4].retain);
  EXPECT_FALSE(rows[0].retain);
  EXPECT_EQ(outbox.last_id(), static_cast<std::uint64_t>(rows[4].id));

  // The engine stored rows 0, 1 and 3; row 2 is still on its way.
  e2e::SequenceWindow stored(64);
  for (const std::size_t i : {0U, 1U, 3U}) {
    stored.accept(static_cast<std::uint64_t>(rows[i].id));
  }
  auto ack = e2e::parse_ack(e2e::encode_ack(stored));
  ASSERT_TRUE(ack);
  EXPECT_EQ(outbox.confirm(*ack), 3U);
  EXPECT_EQ(outbox.size(), 2U);
  const auto left = outbox.after(0, 10);
  ASSERT_EQ(left.size(), 2U);
  EXPECT_EQ(left[0].payload, "2");
  EXPECT_EQ(left[1].payload, "4");
  EXPECT_EQ(outbox.confirm(*ack), 0U);  // the same ack again: nothing more

  // Far below the window counts as done; a new database numbers above the old one.
  stored.accept(static_cast<std::uint64_t>(rows[4].id) + 1000);
  EXPECT_EQ(outbox.confirm(*e2e::parse_ack(e2e::encode_ack(stored))), 2U);
  EXPECT_EQ(outbox.size(), 0U);
}

}  // namespace
}  // namespace recmesh::gateway
