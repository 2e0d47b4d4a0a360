#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recmesh/core/clock.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/e2e/envelope.hpp"
#include "recmesh/e2e/failure.hpp"
#include "recmesh/e2e/key_schedule.hpp"
#include "recmesh/e2e/settings.hpp"

namespace recmesh::e2e {

inline constexpr std::size_t kNonceBytes = 16;
inline constexpr std::size_t kMaxHandshakeBytes = 4096;

// This side's long-term identity: its certificate and the key that signs handshakes.
struct Credentials {
  crypto::PkeyPtr key;
  std::string certificate_der;  // the leaf; intermediates are known to the verifier
  std::string common_name;

  // Reads a chain file (leaf first) and its key (plain or encrypted PKCS#8). Throws Error.
  static Credentials from_files(const std::filesystem::path& chain_pem,
                                const std::filesystem::path& key_pem,
                                const Secret* passphrase = nullptr);
};

// Who the peer must be: a leaf issued directly by the first certificate of `issuer_chain`
// (which runs up to the root, the only trust anchor), not revoked on any CRL of that chain,
// valid now, with exactly `common_name`.
struct PeerTrust {
  std::vector<crypto::X509Ptr> issuer_chain;
  std::vector<crypto::X509CrlPtr> crls;
  std::string common_name;

  // From PEM text; throws Error(kDataLoss) for unreadable PEM.
  static PeerTrust from_pem(std::string_view chain_pem, const std::vector<std::string>& crl_pems,
                            std::string common_name);
  // From a PKI directory (docs/pki.md layout): the chain of CA `authority_id` and the CRL of
  // every CA in it, read now (so a CRL published since is honoured).
  static PeerTrust from_pki_dir(const std::filesystem::path& pki_dir,
                                const std::string& authority_id, std::string common_name);
};

// Checks a peer's leaf certificate (DER) at `now`; its public key on success.
Checked<crypto::PkeyPtr> verify_peer_certificate(const PeerTrust& trust, std::string_view der,
                                                 Clock::TimePoint now);

// The random parts of a handshake message, fixed by the test vectors, fresh otherwise.
struct HandshakeInputs {
  crypto::PkeyPtr ephemeral;  // X25519
  std::string nonce;          // 16 bytes
  std::uint32_t session_id = 0;
  std::uint64_t time_ms = 0;
  static HandshakeInputs fresh(const Clock& clock);
};

// Parsed handshake messages (docs/protocol/e2e.md "Handshake"). `signed_part` is the prefix of
// the message the signature covers (after the context string).
struct InitMessage {
  Suite suite = Suite::kAes256Gcm;
  std::uint32_t session_id = 0;
  std::uint64_t time_ms = 0;
  std::string_view nonce, ephemeral, rec, member, certificate, signature, signed_part;
};
struct ResponseMessage {
  Suite suite = Suite::kAes256Gcm;
  std::uint32_t session_id = 0;
  std::uint64_t time_ms = 0;
  std::string_view nonce, ephemeral, init_hash, certificate, signature, signed_part;
};
struct HelloMessage {
  std::uint64_t time_ms = 0;
  std::string_view nonce, rec, member, certificate, signature, signed_part;
};
// Layout checks only (kTruncated, kMalformed, kUnsupportedSuite); the views point into `bytes`.
Checked<InitMessage> parse_init(std::string_view bytes);
Checked<ResponseMessage> parse_response(std::string_view bytes);
Checked<HelloMessage> parse_hello(std::string_view bytes);

// The EMS engine's side of one handshake with the gateway of `rec`/`member`.
class PlatformHandshake {
 public:
  // Throws Error(kInternal) only if OpenSSL fails to sign.
  PlatformHandshake(const Credentials& own, std::string rec, std::string member, Suite suite,
                    HandshakeInputs inputs);
  // This side of a handshake whose init was recorded, with its ephemeral key (test vectors).
  static Checked<PlatformHandshake> from_recorded(std::string_view init, crypto::PkeyPtr ephemeral);

  const std::string& init() const { return init_; }
  std::uint32_t session_id() const { return session_id_; }
  // Verifies the gateway's response against `gateway` at the clock's time and derives the keys.
  Checked<SessionKeys> finish(std::string_view response, const PeerTrust& gateway,
                              const E2eSettings& settings, const Clock& clock) const;

 private:
  PlatformHandshake() = default;

  std::string rec_, member_;
  Suite suite_ = Suite::kAes256Gcm;
  std::uint32_t session_id_ = 0;
  crypto::PkeyPtr ephemeral_;
  std::string init_;
};

// The gateway's side: verifies an init addressed to `rec`/`member` and signed by `platform`,
// and returns the response to publish with the keys of the new session.
struct Responded {
  std::string response;
  SessionKeys keys;
  std::uint64_t init_time_ms = 0;
};
Checked<Responded> respond_to_init(const Credentials& own, std::string_view rec,
                                   std::string_view member, std::string_view init,
                                   const PeerTrust& platform, const E2eSettings& settings,
                                   const Clock& clock, HandshakeInputs inputs);

// A gateway asks for a handshake (after it started, or when it holds no session).
std::string make_hello(const Credentials& own, std::string_view rec, std::string_view member,
                       const HandshakeInputs& inputs);
// The EMS engine checks a hello from the gateway of `rec`/`member`.
Checked<std::monostate> verify_hello(std::string_view hello, std::string_view rec,
                                     std::string_view member, const PeerTrust& gateway,
                                     const E2eSettings& settings, const Clock& clock);

}  // namespace recmesh::e2e
