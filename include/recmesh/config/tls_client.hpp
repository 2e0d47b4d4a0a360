#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "recmesh/config/schema.hpp"
#include "recmesh/core/secret.hpp"

namespace recmesh::config {

// How a daemon reaches an MQTT broker over mutual TLS. A daemon embeds it under a key of its
// own: s.block("broker", &Settings::broker, config::tls_client_schema()).
struct TlsClientSettings {
  std::string host = "127.0.0.1";  // broker host name or address
  std::uint16_t port = 8883;       // broker TLS port
  std::filesystem::path cafile;    // CA chain that issued the broker's certificate (PEM)
  std::filesystem::path certfile;  // this client's certificate and chain (PEM)
  std::filesystem::path keyfile;   // this client's private key (PEM)
  // Passphrase of an encrypted keyfile, in a file of mode 0600; empty when the key is plain.
  std::filesystem::path key_passphrase_file;

  bool operator==(const TlsClientSettings&) const = default;
};

Schema<TlsClientSettings> tls_client_schema();

// The passphrase of the client key: read from key_passphrase_file (refused unless only its
// owner can read it), or an empty Secret when the key is not encrypted.
Secret read_key_passphrase(const TlsClientSettings& settings);

}  // namespace recmesh::config
