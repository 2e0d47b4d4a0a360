#pragma once

#include <chrono>
#include <string>

namespace recmesh::testing {

struct HttpReply {
  int status = 0;    // 0: no (complete) status line came back
  std::string head;  // status line and headers
  std::string body;
};

// Sends `request` as is to 127.0.0.1:port and reads until the server closes the connection.
HttpReply http_exchange(int port, const std::string& request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

// GET `path` with "Connection: close".
HttpReply http_get(int port, const std::string& path);

}  // namespace recmesh::testing
