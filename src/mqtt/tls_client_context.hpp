#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"

// The TLS side of a client of our brokers (SPEC §6): mutual TLS 1.3 only, the broker's chain
// verified against a CA bundle and its certificate against the host name or address dialled.
namespace recmesh::mqtt {

using SslCtxPtr = crypto::OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = crypto::OpenSslPtr<SSL, SSL_free>;

struct TlsClientFiles {
  std::filesystem::path cafile;                  // bundle that verifies the broker's certificate
  std::filesystem::path certfile;                // this client's chain: leaf, then intermediates
  std::filesystem::path keyfile;                 // PEM private key, plain or encrypted PKCS#8
  std::shared_ptr<const Secret> key_passphrase;  // for an encrypted keyfile
};

// Loads the files once. Throws Error(kInvalidArgument) naming the file that cannot be used,
// kPermissionDenied for a wrong or missing passphrase of an encrypted key.
SslCtxPtr make_tls_client_context(const TlsClientFiles& files);

// A session over the connected socket `fd`, reading through a buffer, that will check the broker's
// certificate against `host`: an IP address literal against its IP entries, a name against its DNS
// entries (and sent as SNI). Null if OpenSSL cannot allocate it.
SslPtr make_tls_client_session(SSL_CTX* context, int fd, const std::string& host);

// True when the session holds input taken from the socket that SSL_read has not returned: the
// socket will not say readable for it.
bool tls_input_held(const SSL* ssl);

}  // namespace recmesh::mqtt
