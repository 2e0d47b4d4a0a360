#pragma once

namespace recmesh::testing {

// A TCP port on 127.0.0.1 that nothing listens on right now (bind to port 0, read it, close).
int free_tcp_port();

// One TCP connection attempt to 127.0.0.1:port: true when something accepted it.
bool accepts_tcp(int port);

// Waits until something accepts TCP connections on 127.0.0.1:port; false after `timeout_ms`.
bool wait_for_listener(int port, int timeout_ms = 10000);

}  // namespace recmesh::testing
