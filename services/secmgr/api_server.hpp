#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recmesh/log/logger.hpp"
#include "recmesh/metrics/registry.hpp"

namespace recmesh::secmgr {

class SecurityManager;

struct ApiServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;                     // 0 picks a free port
  std::filesystem::path certfile;   // server chain (EMS CA, serverAuth)
  std::filesystem::path keyfile;    // its plain PEM key
  std::filesystem::path client_ca;  // EMS CA chain: the only issuer of accepted clients
  std::vector<std::filesystem::path> client_crls;  // CRLs of the EMS CA and of the root
  std::size_t max_body = std::size_t{256} * 1024;
  std::chrono::milliseconds io_timeout{5000};
  int threads = 4;
};

// One route of the API: method and OpenAPI path template ("/v1/recs/{rec}").
struct RouteInfo {
  std::string method;
  std::string path;
};
// Every route the server registers, in the order of docs/api/secmgr.openapi.yaml.
std::vector<RouteInfo> api_routes();

// The HTTPS API (docs/secmgr.md, docs/api/secmgr.openapi.yaml). Every request must come with an
// EMS-CA client certificate that the PKI knows as valid; its common name decides the role.
// Refusals get a 4xx JSON error {"error": "..."} and an audit entry. Serves from a thread pool
// of its own, from construction until destruction.
class ApiServer {
 public:
  // Binds at once; throws Error(kUnavailable) when it cannot, Error(kInvalidArgument) for
  // unusable certificate files.
  ApiServer(SecurityManager& manager, const ApiServerOptions& options, log::Logger logger,
            metrics::Registry& metrics);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  ~ApiServer();

  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace recmesh::secmgr
