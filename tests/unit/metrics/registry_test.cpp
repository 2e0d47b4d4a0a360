#include "recmesh/metrics/registry.hpp"

#include <cmath>
#include <limits>
#include <thread>

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

namespace recmesh::metrics {
namespace {

TEST(RegistryTest, RendersThePrometheusTextFormat) {
  Registry registry;
  registry.counter("recmesh_messages_total", "Messages received", {{"topic", "metrics"}})
      .increment(3);
  registry.counter("recmesh_messages_total", "Messages received", {{"topic", "events"}})
      .increment();
  registry.gauge("recmesh_buffer_bytes", "Bytes waiting in the buffer").set(65536);
  registry.gauge("recmesh_ratio", "A fraction", {{"b", "2"}, {"a", "1"}}).set(0.25);
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP recmesh_buffer_bytes Bytes waiting in the buffer\n"
            "# TYPE recmesh_buffer_bytes gauge\n"
            "recmesh_buffer_bytes 65536\n"
            "# HELP recmesh_messages_total Messages received\n"
            "# TYPE recmesh_messages_total counter\n"
            "recmesh_messages_total{topic=\"events\"} 1\n"
            "recmesh_messages_total{topic=\"metrics\"} 3\n"
            "# HELP recmesh_ratio A fraction\n"
            "# TYPE recmesh_ratio gauge\n"
            "recmesh_ratio{a=\"1\",b=\"2\"} 0.25\n");
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.counter("c_total", "back\\slash and\nnewline", {{"peer", "a\"b\\c\nd"}});
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP c_total back\\\\slash and\\nnewline\n"
            "# TYPE c_total counter\n"
            "c_total{peer=\"a\\\"b\\\\c\\nd\"} 0\n");
}

TEST(RegistryTest, SpecialGaugeValues) {
  Registry registry;
  registry.gauge("g", "g", {{"v", "nan"}}).set(std::nan(""));
  registry.gauge("g", "g", {{"v", "pinf"}}).set(std::numeric_limits<double>::infinity());
  registry.gauge("g", "g", {{"v", "ninf"}}).set(-std::numeric_limits<double>::infinity());
  registry.gauge("g", "g", {{"v", "neg"}}).add(-1.5);
  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find("g{v=\"nan\"} NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{v=\"pinf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{v=\"ninf\"} -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{v=\"neg\"} -1.5\n"), std::string::npos) << text;
}

TEST(RegistryTest, SameNameAndLabelsIsTheSameSeries) {
  Registry registry;
  Counter& a = registry.counter("x_total", "x", {{"a", "1"}, {"b", "2"}});
  Counter& b = registry.counter("x_total", "x", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &registry.counter("x_total", "x", {{"a", "1"}}));
}

TEST(RegistryTest, RefusesNamesOutsideTheGrammarAndConflicts) {
  Registry registry;
  registry.counter("ok_total", "help");
  EXPECT_THROW(registry.counter("9bad", "h"), Error);
  EXPECT_THROW(registry.counter("bad-name", "h"), Error);
  EXPECT_THROW(registry.counter("", "h"), Error);
  EXPECT_THROW(registry.counter("c", "h", {{"bad-label", "v"}}), Error);
  EXPECT_THROW(registry.counter("c", "h", {{"__reserved", "v"}}), Error);
  EXPECT_THROW(registry.counter("c", "h", {{"l", "1"}, {"l", "2"}}), Error);
  EXPECT_THROW(registry.gauge("ok_total", "help"), Error);          // another type
  EXPECT_THROW(registry.counter("ok_total", "other help"), Error);  // another help
  EXPECT_NO_THROW(registry.counter("name:with_colon", "h"));
}

TEST(RegistryTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&registry, t] {
      for (int i = 0; i < 10000; ++i) {
        registry.counter("hits_total", "hits").increment();
        registry.gauge("level", "level", {{"thread", std::to_string(t % 2)}}).add(1);
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(registry.counter("hits_total", "hits").value(), 40000U);
  EXPECT_DOUBLE_EQ(registry.gauge("level", "level", {{"thread", "0"}}).value(), 20000.0);
}

}  // namespace
}  // namespace recmesh::metrics
