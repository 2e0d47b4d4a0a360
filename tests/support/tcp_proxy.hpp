#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace recmesh::testing {

// A TCP relay on 127.0.0.1 that a test can cut and restore, to play a network link that fails:
// clients connect to port(), each connection is relayed to 127.0.0.1:target_port. It runs one
// thread of its own (poll), stops on destruction, and touches no address but loopback.
//
//   TcpProxy backbone(central_bridge_port);
//   settings.central.port = backbone.port();
//   backbone.cut(TcpProxy::Cut::kReset);   // every connection drops, new ones are refused
//   backbone.restore();                    // traffic flows again
class TcpProxy {
 public:
  enum class Cut {
    kReset,      // close every relayed connection; close new ones at once (a link that fails fast)
    kBlackhole,  // keep connections open but move no byte; new ones get no answer (a dead route:
                 // peers notice only through their keepalive)
  };

  // Listens on `listen_port` (0: a free port). Throws std::runtime_error if it cannot listen.
  explicit TcpProxy(int target_port, int listen_port = 0);
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;
  ~TcpProxy();

  int port() const { return port_; }
  void cut(Cut mode = Cut::kReset);
  void restore();
  bool is_cut() const { return mode_.load() != kFlowing; }
  // Connections accepted since construction, and relayed now.
  std::uint64_t accepted() const { return accepted_.load(); }
  std::size_t open_connections() const { return open_.load(); }
  std::uint64_t bytes_relayed() const { return bytes_.load(); }

 private:
  static constexpr int kFlowing = -1;
  struct Pair {
    int client = -1;
    int server = -1;
  };

  void run();
  void wake();
  void close_pair(Pair& pair);
  bool relay(int from, int to);

  int target_port_;
  int port_ = 0;
  int listener_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  std::atomic<int> mode_{kFlowing};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::size_t> open_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::vector<Pair> pairs_;  // the relay thread's alone
  std::thread thread_;
};

}  // namespace recmesh::testing
