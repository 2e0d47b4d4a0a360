#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"

namespace recmesh::crypto {

// Fresh ECDSA P-256 key pair (the default key type, SPEC §3).
PkeyPtr generate_p256_key();

bool is_p256_key(EVP_PKEY* key);

// The public key as an uncompressed point (65 bytes for P-256).
std::string encoded_public_key(EVP_PKEY* key);

// Unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"), for consumers that cannot decrypt (Mosquitto).
// `encoded_point`, if given, must be encoded_public_key(key); it saves recomputing it.
std::string private_key_to_pem(EVP_PKEY* key, std::string_view encoded_point = {});
// The same through OpenSSL's generic encoder (any key type; the reference for the P-256 path).
std::string generic_private_key_to_pem(EVP_PKEY* key);

// Encrypted PKCS#8 PEM: PBES2 with scrypt (N=2^14, r=8, p=1) and AES-256-CBC.
std::string private_key_to_encrypted_pem(EVP_PKEY* key, const Secret& passphrase);

// Reads plain or encrypted PKCS#8 PEM. `label` names the file in errors.
// Throws kDataLoss for unreadable PEM, kPermissionDenied for a wrong or missing passphrase.
PkeyPtr private_key_from_pem(std::string_view pem, const Secret* passphrase,
                             std::string_view label);

bool is_encrypted_private_key_pem(std::string_view pem);

std::string certificate_to_pem(X509* cert);
// Throws kDataLoss naming `label` when the PEM holds no complete certificate.
X509Ptr certificate_from_pem(std::string_view pem, std::string_view label);
// Every certificate in a PEM bundle, in order.
std::vector<X509Ptr> certificates_from_pem(std::string_view pem, std::string_view label);

std::string crl_to_pem(X509_CRL* crl);
X509CrlPtr crl_from_pem(std::string_view pem, std::string_view label);

// Throws kInvalidArgument for anything but one well-formed, self-signed PKCS#10 request.
X509ReqPtr csr_from_pem(std::string_view pem);

// Upper-case hex SHA-256 of the DER encoding.
std::string sha256_fingerprint(X509* cert);

// Common name of a certificate's subject ("" when there is none).
std::string subject_common_name(X509* cert);

}  // namespace recmesh::crypto
