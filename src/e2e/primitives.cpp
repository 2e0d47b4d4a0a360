#include "primitives.hpp"

#include <array>

#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include "recmesh/core/error.hpp"
#include "recmesh/crypto/openssl_error.hpp"

namespace recmesh::e2e::detail {
namespace {

using KdfPtr = crypto::OpenSslPtr<EVP_KDF, EVP_KDF_free>;
using KdfCtxPtr = crypto::OpenSslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using CipherPtr = crypto::OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free>;
using MdPtr = crypto::OpenSslPtr<EVP_MD, EVP_MD_free>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Fetched once: an implicit fetch per call costs more than the cipher on small messages.
const EVP_CIPHER* cipher_of(Suite suite) {
  static const CipherPtr aes(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
  static const CipherPtr chacha(EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr));
  return suite == Suite::kAes256Gcm ? aes.get() : chacha.get();
}

const EVP_MD* sha256_md() {
  static const MdPtr md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  return md.get();
}

std::string hkdf(int mode, std::string_view salt, std::string_view key, std::string_view info,
                 std::size_t length) {
  static const KdfPtr kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  KdfCtxPtr ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!ctx) {
    crypto::throw_openssl_error("HKDF");
  }
  char digest[] = "SHA256";
  std::array<OSSL_PARAM, 6> params{};
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(key.data()),
                                                  key.size());  // NOLINT
  if (mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size());  // NOLINT
  } else {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());  // NOLINT
  }
  params[n] = OSSL_PARAM_construct_end();
  std::string out(length, '\0');
  if (EVP_KDF_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     params.data()) != 1) {
    crypto::throw_openssl_error("HKDF");
  }
  return out;
}

}  // namespace

std::string sha256(std::string_view data) {
  std::string out(kHashBytes, '\0');
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &length,
                 sha256_md(), nullptr) != 1) {
    crypto::throw_openssl_error("SHA-256");
  }
  return out;
}

std::string hkdf_extract(std::string_view salt, std::string_view ikm) {
  return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, ikm, {}, kHashBytes);
}

std::string hkdf_expand(std::string_view prk, std::string_view info, std::size_t length) {
  return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, {}, prk, info, length);
}

crypto::PkeyPtr x25519_generate() {
  crypto::PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!key) {
    crypto::throw_openssl_error("X25519 key generation");
  }
  return key;
}

crypto::PkeyPtr x25519_from_private(std::string_view raw32) {
  crypto::PkeyPtr key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, bytes(raw32), raw32.size()));
  if (!key) {
    crypto::throw_openssl_error("X25519 private key");
  }
  return key;
}

std::string x25519_public(EVP_PKEY* key) {
  std::string out(kX25519Bytes, '\0');
  std::size_t length = out.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(out.data()), &length) !=
          1 ||
      length != kX25519Bytes) {
    crypto::throw_openssl_error("X25519 public key");
  }
  return out;
}

std::optional<std::string> x25519_derive(EVP_PKEY* own, std::string_view peer_public) {
  crypto::PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, bytes(peer_public),
                                                   peer_public.size()));
  crypto::PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  std::string out(kX25519Bytes, '\0');
  std::size_t length = out.size();
  // OpenSSL refuses an all-zero result (a low-order peer point) in EVP_PKEY_derive.
  if (!peer || !ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length) != 1 ||
      length != kX25519Bytes) {
    crypto::drain_openssl_errors();
    return std::nullopt;
  }
  return out;
}

std::string ecdsa_sign(EVP_PKEY* key, std::string_view data) {
  crypto::MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!ctx ||
      EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, bytes(data), data.size()) != 1) {
    crypto::throw_openssl_error("ECDSA sign");
  }
  std::string out(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length, bytes(data),
                     data.size()) != 1) {
    crypto::throw_openssl_error("ECDSA sign");
  }
  out.resize(length);
  return out;
}

bool ecdsa_verify(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  crypto::MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx &&
      EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) == 1 &&
      EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(data), data.size()) ==
          1;
  crypto::drain_openssl_errors();
  return ok;
}

AeadKey::AeadKey(Suite suite, std::string_view key, bool encrypt) : ctx_(EVP_CIPHER_CTX_new()) {
  const EVP_CIPHER* cipher = cipher_of(suite);
  if (!ctx_ || cipher == nullptr || key.size() != kKeyBytes ||
      EVP_CipherInit_ex2(ctx_.get(), cipher, bytes(key), nullptr, encrypt ? 1 : 0, nullptr) != 1) {
    crypto::throw_openssl_error("AEAD key");
  }
}

bool AeadKey::seal(std::string_view nonce, std::string_view aad, std::string_view plaintext,
                   std::string& out) {
  int length = 0;
  const std::size_t start = out.size();
  out.resize(start + plaintext.size() + kTagBytes);
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + start);
  bool ok =
      EVP_CipherInit_ex2(ctx_.get(), nullptr, nullptr, bytes(nonce), 1, nullptr) == 1 &&
      EVP_CipherUpdate(ctx_.get(), nullptr, &length, bytes(aad), static_cast<int>(aad.size())) == 1;
  int written = 0;
  ok = ok &&
       (plaintext.empty() || EVP_CipherUpdate(ctx_.get(), dst, &written, bytes(plaintext),
                                              static_cast<int>(plaintext.size())) == 1) &&
       EVP_CipherFinal_ex(ctx_.get(), dst + written, &length) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes, dst + plaintext.size()) ==
           1;
  if (!ok) {
    crypto::drain_openssl_errors();
    out.resize(start);
  }
  return ok;
}

bool AeadKey::open(std::string_view nonce, std::string_view aad, std::string_view ciphertext,
                   std::string_view tag, std::string& out) {
  int length = 0;
  out.resize(ciphertext.size());
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  std::array<unsigned char, kTagBytes> tag_copy{};
  std::copy(tag.begin(), tag.end(), tag_copy.begin());
  int written = 0;
  const bool ok =
      tag.size() == kTagBytes &&
      EVP_CipherInit_ex2(ctx_.get(), nullptr, nullptr, bytes(nonce), 0, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag_copy.data()) == 1 &&
      EVP_CipherUpdate(ctx_.get(), nullptr, &length, bytes(aad), static_cast<int>(aad.size())) ==
          1 &&
      (ciphertext.empty() || EVP_CipherUpdate(ctx_.get(), dst, &written, bytes(ciphertext),
                                              static_cast<int>(ciphertext.size())) == 1) &&
      EVP_CipherFinal_ex(ctx_.get(), dst + written, &length) == 1;
  if (!ok) {
    crypto::drain_openssl_errors();
    out.clear();
  }
  return ok;
}

}  // namespace recmesh::e2e::detail
