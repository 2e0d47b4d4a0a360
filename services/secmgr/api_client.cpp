#include "secmgr/api_client.hpp"

#include <cctype>
#include <csignal>
#include <httplib.h>
#include <mutex>

#include <fmt/format.h>
#include <openssl/pem.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"

namespace recmesh::secmgr {

ApiClient::ApiClient(ApiClientOptions options) : options_(std::move(options)) {
  // A server that answers and closes before reading the whole request (a refusal) must show up
  // as that answer or an error, not end the process with SIGPIPE.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { (void)std::signal(SIGPIPE, SIG_IGN); });
  if (!options_.certfile.empty()) {
    cert_ = crypto::certificate_from_pem(read_file(options_.certfile), options_.certfile.string());
    key_ = crypto::private_key_from_pem(read_file(options_.keyfile), options_.key_passphrase.get(),
                                        options_.keyfile.string());
  }
}

ApiClient::~ApiClient() = default;

ApiResponse ApiClient::get(const std::string& path) {
  return send("GET", path, "", "");
}

ApiResponse ApiClient::post(const std::string& path, const std::string& json_body) {
  return send("POST", path, json_body, "application/json");
}

ApiResponse ApiClient::del(const std::string& path) {
  return send("DELETE", path, "", "");
}

ApiResponse ApiClient::send(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type) {
  std::unique_ptr<httplib::SSLClient> client =
      cert_ ? std::make_unique<httplib::SSLClient>(options_.host, options_.port, cert_.get(),
                                                   key_.get())
            : std::make_unique<httplib::SSLClient>(options_.host, options_.port);
  client->set_ca_cert_path(options_.cafile.string());
  client->enable_server_certificate_verification(true);
  const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(options_.timeout);
  client->set_connection_timeout(timeout);
  client->set_read_timeout(timeout);
  client->set_write_timeout(timeout);
  client->set_keep_alive(false);
  httplib::Request request;
  request.method = method;
  request.path = path;
  request.body = body;
  if (!content_type.empty()) {
    request.set_header("Content-Type", content_type);
  }
  ApiResponse out;
  httplib::Result result = client->send(request);
  if (!result) {
    out.error = httplib::to_string(result.error());
    const long verdict = client->get_openssl_verify_result();
    if (verdict != X509_V_OK) {
      out.error += fmt::format(" (server certificate: {})", X509_verify_cert_error_string(verdict));
    }
    return out;
  }
  out.status = result->status;
  out.body = result->body;
  return out;
}

std::string make_csr_pem(EVP_PKEY* key, const std::string& common_name) {
  crypto::X509ReqPtr request(X509_REQ_new());
  crypto::X509NamePtr name(X509_NAME_new());
  if (!request || !name) {
    throw Error(ErrorCode::kInternal, "out of memory building a CSR");
  }
  if (!common_name.empty() &&
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    crypto::throw_openssl_error("CSR subject");
  }
  if (X509_REQ_set_version(request.get(), 0) != 1 ||
      X509_REQ_set_subject_name(request.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(request.get(), key) != 1 ||
      X509_REQ_sign(request.get(), key, EVP_sha256()) <= 0) {
    crypto::throw_openssl_error("CSR signature");
  }
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), request.get()) != 1) {
    crypto::throw_openssl_error("CSR encoding");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

std::string url_encode(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

}  // namespace recmesh::secmgr
