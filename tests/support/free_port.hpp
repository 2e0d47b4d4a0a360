#pragma once

namespace recmesh::testing {

// A TCP port on 127.0.0.1 that nothing listens on right now, never the same twice in a process:
// free_loopback_port(), below the kernel's ephemeral range and picked at random, so that no
// outgoing connection takes it before the test binds it, and claimed, so that test processes
// running alongside never pick the same one.
int free_tcp_port();

// One TCP connection attempt to 127.0.0.1:port: true when something accepted it.
bool accepts_tcp(int port);

// Waits until something accepts TCP connections on 127.0.0.1:port; false after `timeout_ms`.
bool wait_for_listener(int port, int timeout_ms = 10000);

}  // namespace recmesh::testing
