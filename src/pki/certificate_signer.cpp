#include "recmesh/pki/certificate_signer.hpp"

#include <array>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"

namespace recmesh::pki {
namespace {

using crypto::throw_openssl_error;

constexpr std::array<std::pair<RevocationReason, std::string_view>, 6> kReasonNames{{
    {RevocationReason::kUnspecified, "unspecified"},
    {RevocationReason::kKeyCompromise, "key-compromise"},
    {RevocationReason::kCaCompromise, "ca-compromise"},
    {RevocationReason::kAffiliationChanged, "affiliation-changed"},
    {RevocationReason::kSuperseded, "superseded"},
    {RevocationReason::kCessationOfOperation, "cessation-of-operation"},
}};

constexpr std::size_t kSerialBytes = 16;
constexpr std::string_view kOrganization = "recmesh";

crypto::Asn1IntegerPtr random_serial() {
  std::array<unsigned char, kSerialBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw_openssl_error("RAND_bytes");
  }
  bytes[0] &= 0x7F;  // positive
  bytes[0] |= 0x40;  // and always 16 bytes long, so serials sort and print uniformly
  crypto::BignumPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  crypto::Asn1IntegerPtr serial(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
  if (!serial) {
    throw_openssl_error("cannot create serial number");
  }
  return serial;
}

crypto::Asn1IntegerPtr serial_from_hex(std::string_view hex) {
  BIGNUM* raw = nullptr;
  const std::string text(hex);
  if (BN_hex2bn(&raw, text.c_str()) == 0) {
    throw Error(ErrorCode::kDataLoss, fmt::format("malformed serial {}", quote_untrusted(hex)));
  }
  crypto::BignumPtr bn(raw);
  crypto::Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) {
    throw_openssl_error("BN_to_ASN1_INTEGER");
  }
  return serial;
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  crypto::X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    throw_openssl_error(fmt::format("cannot add extension {}", OBJ_nid2sn(nid)));
  }
}

// Fills the certificate's own (empty) subject in place: X509_set_subject_name would copy a
// name through a DER round trip.
void set_subject(X509* cert, std::string_view common_name) {
  X509_NAME* name = X509_get_subject_name(cert);
  for (const auto& [field, value] :
       {std::pair<const char*, std::string_view>{"O", kOrganization}, {"CN", common_name}}) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      throw_openssl_error("cannot build subject name");
    }
  }
}

// Copies the issuer's subject entry by entry (cheaper than X509_set_issuer_name's round trip).
void set_issuer(X509* cert, const X509_NAME* issuer_subject) {
  X509_NAME* name = X509_get_issuer_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(issuer_subject); ++i) {
    if (X509_NAME_add_entry(name, X509_NAME_get_entry(issuer_subject, i), -1, 0) != 1) {
      throw_openssl_error("cannot set issuer name");
    }
  }
}

// Extensions whose value never changes, built once per thread and copied into each leaf.
const X509_EXTENSION* constant_extension(int nid, const char* value) {
  thread_local std::map<std::pair<int, std::string>, crypto::X509ExtensionPtr> cache;
  auto& slot = cache[{nid, value}];
  if (!slot) {
    slot.reset(X509V3_EXT_nconf_nid(nullptr, nullptr, nid, value));
    if (!slot) {
      throw_openssl_error(fmt::format("cannot build extension {}", OBJ_nid2sn(nid)));
    }
  }
  return slot.get();
}

// The AKI of every certificate a CA signs is the same: built once per CA key identifier.
void add_authority_key_identifier(X509* cert, X509* issuer, X509V3_CTX* ctx) {
  const ASN1_OCTET_STRING* issuer_ski = X509_get0_subject_key_id(issuer);
  if (issuer_ski == nullptr) {
    add_extension(cert, ctx, NID_authority_key_identifier, "keyid:always");
    return;
  }
  thread_local std::map<std::string, crypto::X509ExtensionPtr> cache;
  const std::string key(reinterpret_cast<const char*>(ASN1_STRING_get0_data(issuer_ski)),
                        static_cast<std::size_t>(ASN1_STRING_length(issuer_ski)));
  auto& slot = cache[key];
  if (!slot) {
    slot.reset(X509V3_EXT_nconf_nid(nullptr, ctx, NID_authority_key_identifier, "keyid:always"));
    if (!slot) {
      throw_openssl_error("cannot build authority key identifier");
    }
  }
  if (X509_add_ext(cert, slot.get(), -1) != 1) {
    throw_openssl_error("cannot add authority key identifier");
  }
}

void add_constant_extension(X509* cert, int nid, const char* value) {
  if (X509_add_ext(cert, const_cast<X509_EXTENSION*>(constant_extension(nid, value)), -1) != 1) {
    throw_openssl_error(fmt::format("cannot add extension {}", OBJ_nid2sn(nid)));
  }
}

// X509_set_pubkey in OpenSSL 3.0 encodes and re-decodes the key (~130 us). For P-256 the
// SubjectPublicKeyInfo is just the curve OIDs and the encoded point (~4 us); the result is the
// same DER, which the signer's tests check.
bool set_public_key(X509* cert, EVP_PKEY* key, std::string_view encoded_point) {
  if (!crypto::is_p256_key(key)) {
    return X509_set_pubkey(cert, key) == 1;
  }
  unsigned char* point = nullptr;
  std::size_t length = 0;
  if (encoded_point.empty()) {
    length = EVP_PKEY_get1_encoded_public_key(key, &point);
  } else {
    length = encoded_point.size();
    point = static_cast<unsigned char*>(OPENSSL_memdup(encoded_point.data(), length));
  }
  if (point == nullptr || length == 0 ||
      X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                             V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), point,
                             static_cast<int>(length)) != 1) {
    OPENSSL_free(point);
    return false;
  }
  return true;
}

void set_time(ASN1_TIME* field, Clock::TimePoint t) {
  if (ASN1_TIME_set(field, static_cast<time_t>(to_unix_seconds(t))) == nullptr) {
    throw_openssl_error("cannot set certificate time");
  }
}

}  // namespace

std::string_view to_string(RevocationReason reason) {
  for (const auto& [r, name] : kReasonNames) {
    if (r == reason) {
      return name;
    }
  }
  return "unspecified";
}

RevocationReason parse_revocation_reason(std::string_view text) {
  for (const auto& [reason, name] : kReasonNames) {
    if (name == text) {
      return reason;
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown revocation reason {} (expected unspecified, key-compromise, "
                          "ca-compromise, affiliation-changed, superseded or "
                          "cessation-of-operation)",
                          quote_untrusted(text)));
}

std::string serial_to_hex(const ASN1_INTEGER* serial) {
  crypto::BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
  if (hex == nullptr) {
    throw_openssl_error("cannot print serial number");
  }
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

crypto::MdCtxPtr make_signing_template(EVP_PKEY* issuer_key) {
  crypto::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, issuer_key) != 1) {
    throw_openssl_error("cannot prepare certificate signing");
  }
  return ctx;
}

SignedCertificate sign_certificate(const CertificateTemplate& tmpl, EVP_PKEY* subject_key,
                                   X509* issuer, EVP_PKEY* issuer_key,
                                   const EVP_MD_CTX* signing_template) {
  crypto::X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    throw_openssl_error("X509_new");
  }
  crypto::Asn1IntegerPtr serial = random_serial();
  set_subject(cert.get(), tmpl.common_name);
  set_issuer(cert.get(), X509_get_subject_name(issuer != nullptr ? issuer : cert.get()));
  if (X509_set_serialNumber(cert.get(), serial.get()) != 1 ||
      !set_public_key(cert.get(), subject_key, tmpl.encoded_public_key)) {
    throw_openssl_error("cannot fill certificate");
  }
  set_time(X509_getm_notBefore(cert.get()), tmpl.not_before);
  set_time(X509_getm_notAfter(cert.get()), tmpl.not_after);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    add_authority_key_identifier(cert.get(), issuer, &ctx);
  }
  switch (tmpl.usage) {
    case CertificateTemplate::Usage::kCertificateAuthority:
      add_extension(cert.get(), &ctx, NID_basic_constraints,
                    tmpl.path_length >= 0
                        ? fmt::format("critical,CA:TRUE,pathlen:{}", tmpl.path_length)
                        : std::string("critical,CA:TRUE"));
      add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case CertificateTemplate::Usage::kServer:
    case CertificateTemplate::Usage::kClient:
      add_constant_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
      add_constant_extension(cert.get(), NID_key_usage, "critical,digitalSignature");
      add_constant_extension(
          cert.get(), NID_ext_key_usage,
          tmpl.usage == CertificateTemplate::Usage::kServer ? "serverAuth" : "clientAuth");
      break;
  }
  if (!tmpl.sans.empty()) {
    // Entries were validated by SubjectAltName::parse: no commas, no other types.
    add_extension(cert.get(), &ctx, NID_subject_alt_name, join_subject_alt_names(tmpl.sans));
  }
  if (signing_template != nullptr) {
    crypto::MdCtxPtr signing(EVP_MD_CTX_new());
    if (!signing || EVP_MD_CTX_copy_ex(signing.get(), signing_template) != 1 ||
        X509_sign_ctx(cert.get(), signing.get()) <= 0) {
      throw_openssl_error("cannot sign certificate");
    }
  } else if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
    throw_openssl_error("cannot sign certificate");
  }
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert.get(), &der);
  if (length <= 0) {
    throw_openssl_error("cannot encode certificate");
  }
  SignedCertificate out{std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(length)),
                        serial_to_hex(serial.get())};
  OPENSSL_free(der);
  return out;
}

std::string SignedCertificate::pem() const {
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio(bio.get(), "CERTIFICATE", "",
                            reinterpret_cast<const unsigned char*>(der.data()),
                            static_cast<long>(der.size())) <= 0) {
    throw_openssl_error("cannot encode certificate");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

crypto::X509Ptr SignedCertificate::parse() const {
  const auto* bytes = reinterpret_cast<const unsigned char*>(der.data());
  crypto::X509Ptr cert(d2i_X509(nullptr, &bytes, static_cast<long>(der.size())));
  if (!cert) {
    throw_openssl_error("cannot decode certificate");
  }
  return cert;
}

crypto::X509CrlPtr sign_crl(X509* issuer, EVP_PKEY* issuer_key,
                            const std::vector<RevokedEntry>& revoked, long long crl_number,
                            Clock::TimePoint this_update, Clock::TimePoint next_update) {
  crypto::X509CrlPtr crl(X509_CRL_new());
  crypto::Asn1TimePtr last(ASN1_TIME_new());
  crypto::Asn1TimePtr next(ASN1_TIME_new());
  if (!crl || !last || !next || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer)) != 1) {
    throw_openssl_error("X509_CRL_new");
  }
  set_time(last.get(), this_update);
  set_time(next.get(), next_update);
  if (X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    throw_openssl_error("cannot set CRL times");
  }
  for (const auto& entry : revoked) {
    crypto::X509RevokedPtr item(X509_REVOKED_new());
    crypto::Asn1IntegerPtr serial = serial_from_hex(entry.serial);
    crypto::Asn1TimePtr when(ASN1_TIME_new());
    crypto::Asn1EnumeratedPtr reason(ASN1_ENUMERATED_new());
    if (!item || !when || !reason) {
      throw_openssl_error("X509_REVOKED_new");
    }
    set_time(when.get(), from_unix_seconds(entry.revoked_at));
    if (X509_REVOKED_set_serialNumber(item.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(item.get(), when.get()) != 1 ||
        ASN1_ENUMERATED_set(reason.get(), static_cast<long>(entry.reason)) != 1 ||
        X509_REVOKED_add1_ext_i2d(item.get(), NID_crl_reason, reason.get(), 0, 0) != 1 ||
        X509_CRL_add0_revoked(crl.get(), item.get()) != 1) {
      throw_openssl_error("cannot add CRL entry");
    }
    (void)item.release();  // owned by the CRL now
  }
  crypto::Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set_int64(number.get(), crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    throw_openssl_error("cannot set CRL number");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, nullptr, nullptr, crl.get(), 0);
  crypto::X509ExtensionPtr aki(
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) {
    throw_openssl_error("cannot set CRL authority key identifier");
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), issuer_key, EVP_sha256()) <= 0) {
    throw_openssl_error("cannot sign CRL");
  }
  return crl;
}

}  // namespace recmesh::pki
