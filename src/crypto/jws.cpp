#include "recmesh/crypto/jws.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/ec.h>
#include <openssl/x509.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/base64url.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"

namespace recmesh::crypto {
namespace {

using nlohmann::json;

constexpr std::string_view kAlgorithm = "ES256";
constexpr std::string_view kType = "recmesh+jws";
constexpr std::string_view kTopicParameter = "rmt";
constexpr std::size_t kMaxChain = 4;
constexpr std::size_t kCoordinateBytes = 32;
constexpr std::size_t kMaxHeaderBytes = std::size_t{16} * 1024;

using EcdsaSigPtr = OpenSslPtr<ECDSA_SIG, ECDSA_SIG_free>;

std::string der_of(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  if (length <= 0) {
    throw_openssl_error("i2d_X509");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

// JWS carries ECDSA signatures as r || s, 32 bytes each (RFC 7518 §3.4), not DER.
std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) {
    throw_openssl_error("d2i_ECDSA_SIG");
  }
  std::array<unsigned char, 2 * kCoordinateBytes> raw{};
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw.data(), kCoordinateBytes) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw.data() + kCoordinateBytes, kCoordinateBytes) <
          0) {
    throw_openssl_error("BN_bn2binpad");
  }
  return {reinterpret_cast<char*>(raw.data()), raw.size()};
}

std::optional<std::string> raw_to_der(std::string_view raw) {
  if (raw.size() != 2 * kCoordinateBytes) {
    return std::nullopt;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BignumPtr r(BN_bin2bn(bytes, kCoordinateBytes, nullptr));
  BignumPtr s(BN_bin2bn(bytes + kCoordinateBytes, kCoordinateBytes, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    drain_openssl_errors();
    return std::nullopt;
  }
  (void)r.release();
  (void)s.release();
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig.get(), &der);
  if (length <= 0) {
    drain_openssl_errors();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

Result<VerifiedPayload> reject(ErrorCode code, std::string why) {
  return Result<VerifiedPayload>::failure(code, "signed message refused: " + std::move(why));
}

}  // namespace

JwsSigner::JwsSigner(PkeyPtr key, std::vector<X509Ptr> chain) : key_(std::move(key)) {
  if (chain.empty() || !key_ || !is_p256_key(key_.get())) {
    throw Error(ErrorCode::kInvalidArgument, "a JWS signer needs a P-256 key and its certificate");
  }
  if (X509_check_private_key(chain.front().get(), key_.get()) != 1) {
    drain_openssl_errors();
    throw Error(ErrorCode::kInvalidArgument, "the signing key does not match its certificate");
  }
  common_name_ = subject_common_name(chain.front().get());
  for (const auto& cert : chain) {
    x5c_.push_back(base64_encode(der_of(cert.get())));
  }
}

JwsSigner JwsSigner::from_files(const std::filesystem::path& chain_pem,
                                const std::filesystem::path& key_pem,
                                const Secret* key_passphrase) {
  return JwsSigner(private_key_from_pem(read_file(key_pem), key_passphrase, key_pem.string()),
                   certificates_from_pem(read_file(chain_pem), chain_pem.string()));
}

std::string JwsSigner::sign(std::string_view topic, std::string_view payload) const {
  json header{{"alg", kAlgorithm},
              {"typ", kType},
              {"crit", json::array({kTopicParameter})},
              {std::string(kTopicParameter), topic},
              {"x5c", x5c_}};
  const std::string signing_input =
      base64url_encode(header.dump()) + "." + base64url_encode(payload);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    throw_openssl_error("cannot sign");
  }
  std::string der(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &length,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    throw_openssl_error("cannot sign");
  }
  der.resize(length);
  return signing_input + "." + base64url_encode(der_to_raw(der));
}

JwsVerifier::JwsVerifier(const SignerTrust& trust, const Clock& clock)
    : issuer_(certificate_from_pem(trust.issuer_pem, "the signer's issuing CA")),
      crl_(crl_from_pem(trust.crl_pem, "the signer's CRL")),
      allowed_(trust.allowed_signers),
      max_bytes_(trust.max_bytes),
      clock_(&clock) {
  PkeyPtr issuer_key(X509_get_pubkey(issuer_.get()));
  if (!issuer_key || X509_CRL_verify(crl_.get(), issuer_key.get()) != 1 ||
      X509_NAME_cmp(X509_CRL_get_issuer(crl_.get()), X509_get_subject_name(issuer_.get())) != 0) {
    drain_openssl_errors();
    throw Error(ErrorCode::kInvalidArgument, "the CRL was not issued by the signer's CA");
  }
}

JwsVerifier::JwsVerifier(JwsVerifier&&) noexcept = default;
JwsVerifier& JwsVerifier::operator=(JwsVerifier&&) noexcept = default;
JwsVerifier::~JwsVerifier() = default;

Result<VerifiedPayload> JwsVerifier::verify(std::string_view topic,
                                            std::string_view compact) const {
  if (compact.size() > max_bytes_) {
    return reject(ErrorCode::kInvalidArgument,
                  fmt::format("{} bytes exceed the limit of {}", compact.size(), max_bytes_));
  }
  const std::size_t first = compact.find('.');
  const std::size_t second = first == std::string_view::npos ? first : compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos) {
    return reject(ErrorCode::kInvalidArgument, "not a JWS compact serialization");
  }
  const std::string_view header_b64 = compact.substr(0, first);
  const std::string_view payload_b64 = compact.substr(first + 1, second - first - 1);
  auto header_bytes = base64url_decode(header_b64);
  auto payload = base64url_decode(payload_b64);
  auto signature = base64url_decode(compact.substr(second + 1));
  if (!header_bytes || !payload || !signature || header_bytes->size() > kMaxHeaderBytes) {
    return reject(ErrorCode::kInvalidArgument, "malformed base64url");
  }
  json header = json::parse(*header_bytes, nullptr, false);
  if (!header.is_object() || header.size() != 5 || !header.contains("alg") ||
      !header.contains("typ") || !header.contains("crit") || !header.contains(kTopicParameter) ||
      !header.contains("x5c")) {
    return reject(ErrorCode::kInvalidArgument, "the protected header is not the expected one");
  }
  if (header["alg"] != kAlgorithm) {
    return reject(ErrorCode::kPermissionDenied, "only ES256 is accepted");
  }
  if (header["typ"] != kType || header["crit"] != json::array({kTopicParameter})) {
    return reject(ErrorCode::kInvalidArgument, "unexpected typ or crit");
  }
  if (!header[kTopicParameter].is_string() || header[kTopicParameter] != topic) {
    return reject(ErrorCode::kPermissionDenied, "signed for another topic");
  }
  const json& x5c = header["x5c"];
  if (!x5c.is_array() || x5c.empty() || x5c.size() > kMaxChain || !x5c.front().is_string()) {
    return reject(ErrorCode::kInvalidArgument, "x5c must hold 1 to 4 certificates");
  }
  auto leaf_der = base64_decode(x5c.front().get<std::string>());
  if (!leaf_der) {
    return reject(ErrorCode::kInvalidArgument, "x5c is not base64");
  }
  const auto* der_bytes = reinterpret_cast<const unsigned char*>(leaf_der->data());
  X509Ptr leaf(d2i_X509(nullptr, &der_bytes, static_cast<long>(leaf_der->size())));
  if (!leaf ||
      der_bytes != reinterpret_cast<const unsigned char*>(leaf_der->data()) + leaf_der->size()) {
    drain_openssl_errors();
    return reject(ErrorCode::kInvalidArgument, "x5c[0] is not a DER certificate");
  }

  // The issuing CA is the only trust anchor: PARTIAL_CHAIN stops at it, CRL_CHECK checks the leaf.
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), issuer_.get()) != 1 ||
      X509_STORE_add_crl(store.get(), crl_.get()) != 1 ||
      X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_CRL_CHECK) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) != 1) {
    drain_openssl_errors();
    return reject(ErrorCode::kInternal, "cannot set up certificate verification");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(to_unix_seconds(clock_->now())));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int code = X509_STORE_CTX_get_error(ctx.get());
    drain_openssl_errors();
    return reject(ErrorCode::kPermissionDenied,
                  fmt::format("signer certificate: {}", X509_verify_cert_error_string(code)));
  }
  if (X509_check_ca(leaf.get()) != 0) {
    return reject(ErrorCode::kPermissionDenied, "the signer is a CA");
  }
  const std::string signer = subject_common_name(leaf.get());
  if (!allowed_.empty() && std::find(allowed_.begin(), allowed_.end(), signer) == allowed_.end()) {
    return reject(ErrorCode::kPermissionDenied, fmt::format("{} may not sign this", signer));
  }

  PkeyPtr key(X509_get_pubkey(leaf.get()));
  auto der_signature = raw_to_der(*signature);
  if (!key || !is_p256_key(key.get()) || !der_signature) {
    drain_openssl_errors();
    return reject(ErrorCode::kPermissionDenied, "malformed ES256 signature or key");
  }
  const std::string_view signing_input = compact.substr(0, second);
  MdCtxPtr md(EVP_MD_CTX_new());
  const bool valid =
      md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(der_signature->data()),
                       der_signature->size(),
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) == 1;
  drain_openssl_errors();
  if (!valid) {
    return reject(ErrorCode::kPermissionDenied, "bad signature");
  }
  return VerifiedPayload{std::move(*payload), signer};
}

}  // namespace recmesh::crypto
