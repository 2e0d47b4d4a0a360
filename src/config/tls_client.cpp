#include "recmesh/config/tls_client.hpp"

namespace recmesh::config {

Schema<TlsClientSettings> tls_client_schema() {
  using S = TlsClientSettings;
  Schema<S> s;
  s.field("host", &S::host, "Broker host name or IP address").non_empty();
  s.field("port", &S::port, "Broker TLS port").range(1, 65535);
  s.field("cafile", &S::cafile, "CA chain that issued the broker's certificate (PEM)")
      .required()
      .existing_file();
  s.field("certfile", &S::certfile, "This client's certificate and its chain (PEM)")
      .required()
      .existing_file();
  s.field("keyfile", &S::keyfile, "This client's private key (PEM)").required().existing_file();
  s.field("key_passphrase_file", &S::key_passphrase_file,
          "File holding the passphrase of an encrypted keyfile (mode 0600); empty when the key "
          "is not encrypted")
      .existing_file();
  s.validate([](const S& tls, Validation& v) {
    if (tls.keyfile == tls.cafile) {
      v.fail("keyfile", "must not be the cafile (allowed: a file of its own)");
    }
    if (tls.certfile == tls.cafile) {
      v.fail("certfile", "must not be the cafile (allowed: a file of its own)");
    }
  });
  return s;
}

Secret read_key_passphrase(const TlsClientSettings& settings) {
  if (settings.key_passphrase_file.empty()) {
    return Secret();
  }
  return read_secret_file(settings.key_passphrase_file);
}

}  // namespace recmesh::config
