#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "recmesh/mqtt/event_loop.hpp"

namespace recmesh::sim {

// A TCP relay on 127.0.0.1 between a member's bridge and the central broker, driven by the
// simulator's EventLoop, that the timeline controls: cut (drop every connection, refuse new
// ones by closing them on accept), restore, and slow (hold every chunk `delay` before sending
// it on). It never looks inside the (TLS) bytes.
class BackboneProxy {
 public:
  // Listens on 127.0.0.1:listen_port (0: any free port) and relays to 127.0.0.1:target_port.
  // Throws Error(kInternal) when it cannot listen.
  BackboneProxy(mqtt::EventLoop& loop, int listen_port, int target_port);
  BackboneProxy(const BackboneProxy&) = delete;
  BackboneProxy& operator=(const BackboneProxy&) = delete;
  ~BackboneProxy();

  int port() const { return port_; }
  void cut();
  void restore();
  void set_delay(std::chrono::milliseconds delay) { delay_ = delay; }
  bool is_cut() const { return cut_; }
  std::chrono::milliseconds delay() const { return delay_; }

  std::uint64_t bytes_up() const { return bytes_up_; }      // bridge -> central
  std::uint64_t bytes_down() const { return bytes_down_; }  // central -> bridge
  std::uint64_t connections() const { return accepted_; }
  std::size_t open_connections() const { return links_.size(); }

 private:
  struct Chunk {
    mqtt::MonotonicClock::TimePoint due;
    std::string bytes;
  };
  struct Side {
    int fd = -1;
    std::deque<Chunk> outbox;  // bytes waiting to be written to this side
    bool want_write = false;
  };
  struct Link {
    Side client;    // the bridge
    Side upstream;  // the central broker
    bool upstream_connected = false;
    mqtt::EventLoop::TimerId timer = 0;
  };

  void on_accept();
  void on_readable(std::uint64_t id, bool from_client);
  void on_writable(std::uint64_t id, bool to_client);
  void flush(std::uint64_t id);
  void update_watch(std::uint64_t id);
  void close_link(std::uint64_t id);

  mqtt::EventLoop& loop_;
  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  bool cut_ = false;
  std::chrono::milliseconds delay_{0};
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Link>> links_;
  std::uint64_t bytes_up_ = 0;
  std::uint64_t bytes_down_ = 0;
  std::uint64_t accepted_ = 0;
};

}  // namespace recmesh::sim
