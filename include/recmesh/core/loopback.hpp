#pragma once

#include <netinet/in.h>
#include <vector>

namespace recmesh {

// 127.0.0.1:`port` as an IPv4 socket address (port 0: any free port when bound).
sockaddr_in loopback_address(int port);

// Whether a TCP socket could bind 127.0.0.1:`port` now (nothing listens on it or holds it).
bool loopback_bindable(int port);

// One TCP connection attempt to 127.0.0.1:`port`: true when something accepted it.
bool loopback_accepts(int port);

// A TCP port on 127.0.0.1 that can be bound now and is not among `taken`, which it joins.
// Picked at random below the kernel's ephemeral range (net.ipv4.ip_local_port_range), from
// 20000 up: until its user binds it, no outgoing connection of any process on the machine can
// take it as its source port. A port is handed out once per process, and never while another
// process of the same user that picked it lives (a lock on
// $TMPDIR/recmesh-loopback-ports-<uid>): simulators and tests starting brokers side by side do
// not pick the same port. Thread-safe. Throws Error(kInternal) when none is found.
int free_loopback_port(std::vector<int>& taken);

}  // namespace recmesh
