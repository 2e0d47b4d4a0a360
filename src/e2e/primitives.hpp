#pragma once

// OpenSSL 3 EVP building blocks of the e2e layer: HKDF-SHA256, SHA-256, X25519, ECDSA P-256 and
// the two AEADs. Nothing here implements a primitive; it only drives EVP.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/e2e/envelope.hpp"

namespace recmesh::e2e::detail {

using CipherCtxPtr = crypto::OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

inline constexpr std::size_t kKeyBytes = 32;
inline constexpr std::size_t kIvBytes = 12;
inline constexpr std::size_t kHashBytes = 32;
inline constexpr std::size_t kX25519Bytes = 32;

std::string sha256(std::string_view data);
// RFC 5869 with SHA-256. Throw Error(kInternal) only if OpenSSL itself fails.
std::string hkdf_extract(std::string_view salt, std::string_view ikm);
std::string hkdf_expand(std::string_view prk, std::string_view info, std::size_t length);

// X25519 ephemeral keys.
crypto::PkeyPtr x25519_generate();
crypto::PkeyPtr x25519_from_private(std::string_view raw32);
std::string x25519_public(EVP_PKEY* key);
// The shared secret, or nothing for a malformed or low-order peer key.
std::optional<std::string> x25519_derive(EVP_PKEY* own, std::string_view peer_public);

// ECDSA with SHA-256 over `data` (DER signature), with the certificate key.
std::string ecdsa_sign(EVP_PKEY* key, std::string_view data);
bool ecdsa_verify(EVP_PKEY* key, std::string_view data, std::string_view signature);

// One direction's AEAD with its key loaded once; the nonce changes per message.
class AeadKey {
 public:
  AeadKey(Suite suite, std::string_view key, bool encrypt);
  AeadKey(AeadKey&&) noexcept = default;
  AeadKey& operator=(AeadKey&&) noexcept = default;

  // Appends ciphertext || tag to `out`. False only if OpenSSL fails.
  bool seal(std::string_view nonce, std::string_view aad, std::string_view plaintext,
            std::string& out);
  // Writes the plaintext to `out`; false when the tag does not verify.
  bool open(std::string_view nonce, std::string_view aad, std::string_view ciphertext,
            std::string_view tag, std::string& out);

 private:
  CipherCtxPtr ctx_;
};

}  // namespace recmesh::e2e::detail
