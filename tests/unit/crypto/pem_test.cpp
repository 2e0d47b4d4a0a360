#include "recmesh/crypto/pem.hpp"

#include <chrono>

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "recmesh/core/error.hpp"
#include "recmesh/pki/certificate_signer.hpp"

namespace recmesh::crypto {
namespace {

std::string spki_der(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

TEST(PemTest, FastP256KeyEncodingIsByteIdenticalToOpenSsl) {
  for (int i = 0; i < 64; ++i) {  // scalars with leading zero bytes occur about 1 in 256
    PkeyPtr key = generate_p256_key();
    const std::string fast = private_key_to_pem(key.get());
    ASSERT_EQ(fast, generic_private_key_to_pem(key.get()));
    PkeyPtr back = private_key_from_pem(fast, nullptr, "key");
    EXPECT_EQ(EVP_PKEY_eq(key.get(), back.get()), 1);
  }
}

TEST(PemTest, FastPublicKeyInCertificateMatchesOpenSsl) {
  PkeyPtr key = generate_p256_key();
  pki::CertificateTemplate tmpl;
  tmpl.common_name = "rec_r1_m1_pv1";
  tmpl.not_before = std::chrono::system_clock::now();
  tmpl.not_after = tmpl.not_before + std::chrono::hours(1);
  X509Ptr cert = pki::sign_certificate(tmpl, key.get(), nullptr, key.get()).parse();
  X509Ptr reference(X509_new());
  ASSERT_EQ(X509_set_pubkey(reference.get(), key.get()), 1);
  EXPECT_EQ(spki_der(cert.get()), spki_der(reference.get()));
  PkeyPtr embedded(X509_get_pubkey(cert.get()));
  EXPECT_EQ(EVP_PKEY_eq(embedded.get(), key.get()), 1);
  EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);
}

TEST(PemTest, OtherKeyTypesStillEncode) {
  PkeyPtr p384(EVP_EC_gen("secp384r1"));
  ASSERT_TRUE(p384);
  EXPECT_FALSE(is_p256_key(p384.get()));
  const std::string pem = private_key_to_pem(p384.get());
  EXPECT_EQ(EVP_PKEY_eq(private_key_from_pem(pem, nullptr, "k").get(), p384.get()), 1);
}

TEST(PemTest, TruncatedOrWrongInputIsAClearError) {
  PkeyPtr key = generate_p256_key();
  const std::string pem = private_key_to_pem(key.get());
  EXPECT_THROW(private_key_from_pem(pem.substr(0, pem.size() / 2), nullptr, "k"), Error);
  Secret passphrase("a passphrase for the key");
  const std::string sealed = private_key_to_encrypted_pem(key.get(), passphrase);
  Secret wrong("another passphrase entirely");
  try {
    private_key_from_pem(sealed, &wrong, "k");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied);
  }
  EXPECT_THROW(certificate_from_pem(pem, "k"), Error);
  EXPECT_THROW(csr_from_pem("-----BEGIN CERTIFICATE REQUEST-----\n-----END"), Error);
  EXPECT_THROW(certificate_from_pem(std::string(2 << 20, 'A'), "k"), Error);
}

}  // namespace
}  // namespace recmesh::crypto
