#include "tls_client_context.hpp"

#include <arpa/inet.h>

#include <openssl/x509_vfy.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"

namespace recmesh::mqtt {
namespace {

constexpr int kReadBufferBytes = 64 * 1024;  // taken from the socket per read()

[[noreturn]] void refuse(const std::filesystem::path& file, const std::string& what) {
  const std::string detail = crypto::drain_openssl_errors();
  throw Error(ErrorCode::kInvalidArgument,
              "cannot use " + what + " " + file.string() + (detail.empty() ? "" : ": " + detail));
}

bool is_ip_literal(const std::string& host) {
  in6_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

// SSL_set_tlsext_host_name() without its C cast.
bool send_server_name(SSL* ssl, const std::string& host) {
  return SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                  const_cast<char*>(host.c_str())) == 1;
}

}  // namespace

SslCtxPtr make_tls_client_context(const TlsClientFiles& files) {
  SslCtxPtr context(SSL_CTX_new(TLS_client_method()));
  if (!context) {
    crypto::throw_openssl_error("SSL_CTX_new");
  }
  SSL_CTX* ctx = context.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Partial writes let one SSL_write hand over a whole round of packets and resume where the
  // socket stopped taking them.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_load_verify_locations(ctx, files.cafile.c_str(), nullptr) != 1) {
    refuse(files.cafile, "cafile");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, files.certfile.c_str()) != 1) {
    refuse(files.certfile, "certfile");
  }
  std::string pem;
  try {
    pem = read_file(files.keyfile);
  } catch (const Error&) {
    refuse(files.keyfile, "keyfile");
  }
  // Never a tty prompt: an encrypted key without its passphrase fails here.
  const crypto::PkeyPtr key =
      crypto::private_key_from_pem(pem, files.key_passphrase.get(), files.keyfile.string());
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    refuse(files.keyfile, "keyfile (it does not match the certificate)");
  }
  return context;
}

SslPtr make_tls_client_session(SSL_CTX* context, int fd, const std::string& host) {
  SslPtr ssl(SSL_new(context));
  if (!ssl) {
    return ssl;
  }
  // With OpenSSL 3 an address literal is checked against the certificate's IP entries.
  const bool named = SSL_set1_host(ssl.get(), host.c_str()) == 1 &&
                     (is_ip_literal(host) || send_server_name(ssl.get(), host));
  if (!named) {
    ssl.reset();
    return ssl;
  }
  // Reads go through a buffer: one read() brings many records, and OpenSSL takes each record's
  // header and body from the buffer. (OpenSSL's own read-ahead moves what it holds to the
  // front of its buffer at every record: quadratic in the records one read() brings.)
  BIO* socket_reader = BIO_new_socket(fd, BIO_NOCLOSE);
  BIO* buffer = BIO_new(BIO_f_buffer());
  BIO* socket_writer = BIO_new_socket(fd, BIO_NOCLOSE);
  if (socket_reader == nullptr || buffer == nullptr || socket_writer == nullptr ||
      BIO_set_read_buffer_size(buffer, kReadBufferBytes) != 1) {
    BIO_free(socket_reader);
    BIO_free(buffer);
    BIO_free(socket_writer);
    ssl.reset();
    return ssl;
  }
  SSL_set_bio(ssl.get(), BIO_push(buffer, socket_reader), socket_writer);
  return ssl;
}

bool tls_input_held(const SSL* ssl) {
  return SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
}

}  // namespace recmesh::mqtt
