#include "recmesh/policy/policy_store.hpp"

#include <array>
#include <cstring>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/openssl_error.hpp"

namespace recmesh::policy {
namespace {

constexpr std::string_view kMagic = "RMGUARD1";
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtxPtr new_context() {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx) {
    crypto::throw_openssl_error("cannot create a cipher context");
  }
  return ctx;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

Secret decode_key(const Secret& hex, const std::filesystem::path& file) {
  std::string_view text = hex.reveal();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  std::string raw;
  if (text.size() == 2 * kKeyBytes) {
    for (std::size_t i = 0; i < text.size(); i += 2) {
      const int high = hex_value(text[i]);
      const int low = hex_value(text[i + 1]);
      if (high < 0 || low < 0) {
        raw.clear();
        break;
      }
      raw += static_cast<char>(high * 16 + low);
    }
  }
  if (raw.size() != kKeyBytes) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("{} must hold {} hex digits (a 256-bit key)", file.string(), 2 * kKeyBytes));
  }
  return Secret(std::move(raw));
}

const unsigned char* bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

PolicyStore::PolicyStore(std::filesystem::path path, const std::filesystem::path& key_file)
    : path_(std::move(path)), key_(decode_key(read_secret_file(key_file), key_file)) {}

std::string PolicyStore::generate_key() {
  std::array<unsigned char, kKeyBytes> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    crypto::throw_openssl_error("cannot draw a random key");
  }
  std::string hex;
  for (unsigned char b : key) {
    hex += fmt::format("{:02x}", b);
  }
  OPENSSL_cleanse(key.data(), key.size());
  return hex + "\n";
}

void PolicyStore::save(std::string_view signed_bundle) const {
  std::array<unsigned char, kNonceBytes> nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    crypto::throw_openssl_error("cannot draw a nonce");
  }
  CipherCtxPtr ctx = new_context();
  std::string out(kMagic);
  out.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  const std::size_t header = out.size();
  out.resize(header + signed_bundle.size() + kTagBytes);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + header);
  int len = 0;
  int final_len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_.reveal()),
                         nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(kMagic), static_cast<int>(kMagic.size())) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len, bytes(signed_bundle),
                        static_cast<int>(signed_bundle.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          cipher + signed_bundle.size()) != 1) {
    crypto::throw_openssl_error("cannot encrypt the policy");
  }
  write_file_atomic(path_, out, 0600);
}

Result<std::optional<std::string>> PolicyStore::load() const {
  using Loaded = Result<std::optional<std::string>>;
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    return std::optional<std::string>();
  }
  std::string data;
  try {
    data = read_file(path_);
  } catch (const Error& e) {
    return Loaded::failure(ErrorCode::kDataLoss, e.what());
  }
  const auto corrupt = [&](std::string_view why) {
    return Loaded::failure(ErrorCode::kDataLoss,
                           fmt::format("stored policy {}: {}", path_.string(), why));
  };
  if (data.size() < kMagic.size() + kNonceBytes + kTagBytes ||
      std::string_view(data).substr(0, kMagic.size()) != kMagic) {
    return corrupt("not a recmesh-guard policy file");
  }
  const std::string_view nonce = std::string_view(data).substr(kMagic.size(), kNonceBytes);
  const std::size_t body_at = kMagic.size() + kNonceBytes;
  const std::size_t body_size = data.size() - body_at - kTagBytes;
  std::string tag = data.substr(body_at + body_size);
  std::string plain(body_size, '\0');
  CipherCtxPtr ctx = new_context();
  int len = 0;
  int final_len = 0;
  const bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_.reveal()),
                         bytes(nonce)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(kMagic), static_cast<int>(kMagic.size())) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                        bytes(std::string_view(data).substr(body_at, body_size)),
                        static_cast<int>(body_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len,
                          &final_len) == 1;
  if (!ok) {
    crypto::drain_openssl_errors();
    return corrupt("authentication failed (tampered with, or another key)");
  }
  return std::optional<std::string>(std::move(plain));
}

}  // namespace recmesh::policy
