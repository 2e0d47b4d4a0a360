#pragma once

#include <netinet/in.h>

namespace recmesh {

// 127.0.0.1:`port` as an IPv4 socket address (port 0: any free port when bound).
sockaddr_in loopback_address(int port);

// Whether a TCP socket could bind 127.0.0.1:`port` now (nothing listens on it or holds it).
bool loopback_bindable(int port);

// One TCP connection attempt to 127.0.0.1:`port`: true when something accepted it.
bool loopback_accepts(int port);

}  // namespace recmesh
