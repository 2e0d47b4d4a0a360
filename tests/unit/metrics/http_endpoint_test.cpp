#include "recmesh/metrics/http_endpoint.hpp"

#include <gtest/gtest.h>

#include "recmesh/core/error.hpp"

#include "http_probe.hpp"

namespace recmesh::metrics {
namespace {

using testing::http_exchange;
using testing::http_get;

class HttpEndpointTest : public ::testing::Test {
 protected:
  HttpEndpointTest() { registry_.counter("recmesh_test_total", "A test counter").increment(7); }

  Registry registry_;
  MetricsSettings settings_{true, "127.0.0.1", 0};
};

TEST_F(HttpEndpointTest, ServesTheRegistryAtMetrics) {
  HttpEndpoint endpoint(registry_, settings_);
  ASSERT_GT(endpoint.port(), 0);
  const auto reply = http_get(endpoint.port(), "/metrics");
  EXPECT_EQ(reply.status, 200) << reply.head;
  EXPECT_NE(reply.head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos)
      << reply.head;
  EXPECT_EQ(reply.body, registry_.render_prometheus());
  const auto head = http_exchange(endpoint.port(),
                                  "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  // Values are read at each request.
  registry_.counter("recmesh_test_total", "A test counter").increment();
  EXPECT_NE(http_get(endpoint.port(), "/metrics").body.find("recmesh_test_total 8\n"),
            std::string::npos);
}

TEST_F(HttpEndpointTest, RefusesEverythingElse) {
  HttpEndpoint endpoint(registry_, settings_);
  EXPECT_EQ(http_get(endpoint.port(), "/").status, 404);
  EXPECT_EQ(http_get(endpoint.port(), "/metrics/../secret").status, 404);
  EXPECT_EQ(http_exchange(endpoint.port(),
                          "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n")
                .status,
            405);
  // A request with a body is answered before the body is read.
  EXPECT_EQ(http_exchange(endpoint.port(),
                          "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                          "Connection: close\r\n\r\n0123456789")
                .status,
            405);
  // A request line over the limit, and bytes that are not HTTP, get an error status or a
  // closed connection, and the endpoint keeps serving.
  const auto huge = http_get(endpoint.port(), "/" + std::string(100000, 'a'));
  EXPECT_NE(huge.status, 200);
  const auto garbage =
      http_exchange(endpoint.port(), std::string("\x16\x03\x01\x00\x00\r\n\r\n", 9));
  EXPECT_NE(garbage.status, 200);
  EXPECT_EQ(http_get(endpoint.port(), "/metrics").status, 200);
}

TEST_F(HttpEndpointTest, ListensWhereToldAndFailsLoudlyWhenItCannot) {
  HttpEndpoint first(registry_, settings_);
  MetricsSettings taken = settings_;
  taken.port = static_cast<std::uint16_t>(first.port());
  try {
    HttpEndpoint second(registry_, taken);
    FAIL() << "bound a port that is in use";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
}

TEST_F(HttpEndpointTest, StopsPromptlyEvenRightAfterStarting) {
  for (int i = 0; i < 20; ++i) {
    HttpEndpoint endpoint(registry_, settings_);
  }
}

}  // namespace
}  // namespace recmesh::metrics
