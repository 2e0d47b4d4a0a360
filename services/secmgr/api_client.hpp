#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"

namespace recmesh::secmgr {

struct ApiClientOptions {
  std::string host = "127.0.0.1";
  int port = 8443;
  std::filesystem::path cafile;    // verifies the API's server certificate (EMS CA chain)
  std::filesystem::path certfile;  // client certificate (leaf first); empty: none is presented
  std::filesystem::path keyfile;
  std::shared_ptr<const Secret> key_passphrase;  // for an encrypted keyfile
  std::chrono::milliseconds timeout{10000};
};

struct ApiResponse {
  int status = 0;     // 0: no HTTP answer (see error)
  std::string body;   // JSON as the server sent it
  std::string error;  // transport failure: refused connection, TLS, timeout
  bool ok() const { return status >= 200 && status < 300; }
};

// A client of the Security Manager's API over mutual TLS, for `recmesh sec`, the simulator and
// tests. One connection per request; thread-compatible. The first client makes the process
// ignore SIGPIPE, so that a peer closing early is an error rather than the end of the process.
class ApiClient {
 public:
  // Throws Error(kInvalidArgument) for unreadable certificate or key files.
  explicit ApiClient(ApiClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  ApiResponse get(const std::string& path);
  ApiResponse post(const std::string& path, const std::string& json_body);
  ApiResponse del(const std::string& path);
  // Any method, body and content type (for tests of malformed requests).
  ApiResponse send(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& content_type);

 private:
  ApiClientOptions options_;
  crypto::X509Ptr cert_;
  crypto::PkeyPtr key_;
};

// A PKCS#10 request for `key` with subject CN `common_name` (no CN when empty), signed SHA-256.
std::string make_csr_pem(EVP_PKEY* key, const std::string& common_name);

// Percent-encodes a path segment or query value.
std::string url_encode(std::string_view text);

}  // namespace recmesh::secmgr
