#include "recmesh/e2e/handshake.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/identity.hpp"

#include "byte_io.hpp"
#include "primitives.hpp"

namespace recmesh::e2e {
namespace {

constexpr std::string_view kInitContext = "recmesh e2e v1 init";
constexpr std::string_view kResponseContext = "recmesh e2e v1 response";
constexpr std::string_view kHelloContext = "recmesh e2e v1 hello";
constexpr std::size_t kMaxIdBytes = 32;
constexpr std::size_t kMaxSignatureBytes = 80;

std::uint64_t unix_ms(Clock::TimePoint t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

std::string signing_input(std::string_view context, std::string_view signed_part) {
  std::string input(context);
  input.push_back('\0');
  input.append(signed_part);
  return input;
}

void append_prefixed(std::string& out, std::string_view field, std::size_t width) {
  detail::append_be(out, field.size(), width);
  out.append(field);
}

// Appends the signature (u8 length + DER) over context || out.
void sign_into(std::string& out, std::string_view context, EVP_PKEY* key) {
  const std::string signature = detail::ecdsa_sign(key, signing_input(context, out));
  append_prefixed(out, signature, 1);
}

void put_header(std::string& out, MessageType type, std::uint8_t suite) {
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(suite));
  out.push_back('\0');
}

Checked<std::monostate> check_header(detail::ByteReader& r, std::string_view bytes,
                                     MessageType expected, bool suite_byte, Suite* suite) {
  if (bytes.size() > kMaxHandshakeBytes) {
    return reject(Failure::kMalformed, "handshake message over the size limit");
  }
  auto type = peek_type(bytes);
  if (!type) {
    return type.error();
  }
  if (*type != expected) {
    return reject(Failure::kMalformed, "unexpected handshake message type");
  }
  auto head = r.take(4);
  if (!head) {
    return reject(Failure::kTruncated, "handshake header");
  }
  const auto s = static_cast<std::uint8_t>((*head)[2]);
  if ((*head)[3] != '\0' || (!suite_byte && s != 0)) {
    return reject(Failure::kMalformed, "reserved bytes set");
  }
  if (suite_byte) {
    if (s != static_cast<std::uint8_t>(Suite::kAes256Gcm) &&
        s != static_cast<std::uint8_t>(Suite::kChaCha20Poly1305)) {
      return reject(Failure::kUnsupportedSuite, "unknown suite");
    }
    *suite = static_cast<Suite>(s);
  }
  return std::monostate{};
}

// Reads the trailing certificate and signature; the signed part ends before the signature.
template <typename Message>
Checked<std::monostate> read_tail(detail::ByteReader& r, std::string_view bytes, Message& m) {
  auto cert = r.prefixed(2);
  const std::size_t signed_end = r.position();
  auto sig = r.prefixed(1);
  if (!cert || !sig) {
    return reject(Failure::kTruncated, "certificate or signature runs past the end");
  }
  if (!r.at_end()) {
    return reject(Failure::kMalformed, "trailing bytes");
  }
  if (cert->empty() || sig->empty() || sig->size() > kMaxSignatureBytes) {
    return reject(Failure::kMalformed, "empty certificate or bad signature length");
  }
  m.certificate = *cert;
  m.signature = *sig;
  m.signed_part = bytes.substr(0, signed_end);
  return std::monostate{};
}

Checked<std::monostate> check_fresh(std::uint64_t time_ms, const E2eSettings& s,
                                    const Clock& clock) {
  const std::uint64_t now = unix_ms(clock.now());
  if (time_ms + static_cast<std::uint64_t>(s.max_age.count()) * 1000 < now ||
      time_ms > now + static_cast<std::uint64_t>(s.max_skew.count()) * 1000) {
    return reject(Failure::kStale, "handshake message outside the time bound");
  }
  return std::monostate{};
}

Checked<std::monostate> check_signature(EVP_PKEY* key, std::string_view context,
                                        std::string_view signed_part, std::string_view signature) {
  if (!detail::ecdsa_verify(key, signing_input(context, signed_part), signature)) {
    return reject(Failure::kTampered, "handshake signature does not verify");
  }
  return std::monostate{};
}

std::string gateway_name(std::string_view rec, std::string_view member) {
  return fmt::format("rec_{}_{}_gateway", rec, member);
}

}  // namespace

void E2eSettings::validate() const {
  const auto fail = [](std::string_view key, std::string_view range) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("e2e.{}: must be {}", key, range));
  };
  using std::chrono::seconds;
  if (rotate_after_messages < 1 || rotate_after_messages > (std::uint64_t{1} << 32)) {
    fail("rotate_after_messages", "1 .. 4294967296");
  }
  if (rotate_after < seconds(1) || rotate_after > seconds(7 * 86400)) {
    fail("rotate_after", "1 s .. 7 d");
  }
  if (epoch_grace < seconds(0) || epoch_grace > seconds(3600)) {
    fail("epoch_grace", "0 .. 1 h");
  }
  if (replay_window < 64 || replay_window > 4096 || replay_window % 64 != 0) {
    fail("replay_window", "64 .. 4096, a multiple of 64");
  }
  if (max_age < seconds(1) || max_age > seconds(86400)) {
    fail("max_age", "1 s .. 1 d");
  }
  if (max_skew < seconds(0) || max_skew > seconds(3600)) {
    fail("max_skew", "0 .. 1 h");
  }
  if (handshake_timeout < seconds(1) || handshake_timeout > seconds(600)) {
    fail("handshake_timeout", "1 s .. 10 min");
  }
  if (max_concurrent_handshakes < 1 || max_concurrent_handshakes > 100'000) {
    fail("max_concurrent_handshakes", "1 .. 100000");
  }
  if (max_queued > 1'000'000) {
    fail("max_queued", "0 .. 1000000");
  }
  if (rehandshake_after < seconds(60) || rehandshake_after > seconds(30 * 86400)) {
    fail("rehandshake_after", "1 min .. 30 d");
  }
}

Credentials Credentials::from_files(const std::filesystem::path& chain_pem,
                                    const std::filesystem::path& key_pem,
                                    const Secret* passphrase) {
  Credentials c;
  auto chain = crypto::certificates_from_pem(read_file(chain_pem), chain_pem.string());
  c.key = crypto::private_key_from_pem(read_file(key_pem), passphrase, key_pem.string());
  if (!crypto::is_p256_key(c.key.get()) ||
      X509_check_private_key(chain.front().get(), c.key.get()) != 1) {
    crypto::drain_openssl_errors();
    throw Error(ErrorCode::kInvalidArgument, fmt::format("{}: the key is not the P-256 key of {}",
                                                         key_pem.string(), chain_pem.string()));
  }
  unsigned char* der = nullptr;
  const int length = i2d_X509(chain.front().get(), &der);
  if (length <= 0) {
    crypto::throw_openssl_error("i2d_X509");
  }
  c.certificate_der.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  c.common_name = crypto::subject_common_name(chain.front().get());
  return c;
}

PeerTrust PeerTrust::from_pem(std::string_view chain_pem, const std::vector<std::string>& crl_pems,
                              std::string common_name) {
  PeerTrust t;
  t.issuer_chain = crypto::certificates_from_pem(chain_pem, "the peer's CA chain");
  for (const auto& pem : crl_pems) {
    t.crls.push_back(crypto::crl_from_pem(pem, "a CRL of the peer's CA chain"));
  }
  t.common_name = std::move(common_name);
  return t;
}

Checked<crypto::PkeyPtr> verify_peer_certificate(const PeerTrust& trust, std::string_view der,
                                                 Clock::TimePoint now) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  crypto::X509Ptr leaf(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!leaf || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    crypto::drain_openssl_errors();
    return reject(Failure::kBadCertificate, "not a DER certificate");
  }
  const std::string cn = crypto::subject_common_name(leaf.get());
  if (cn != trust.common_name) {
    const auto got = pki::parse_common_name(cn);
    const auto want = pki::parse_common_name(trust.common_name);
    if (got && want && got->kind == want->kind && got->kind != pki::IdentityKind::kService) {
      return reject(Failure::kWrongMember,
                    fmt::format("certificate of {}, expected {}", cn, trust.common_name));
    }
    return reject(Failure::kWrongRole, fmt::format("certificate of {}, expected {}",
                                                   cn.substr(0, 64), trust.common_name));
  }
  if (trust.issuer_chain.empty()) {
    return reject(Failure::kInternal, "no trust anchor configured");
  }
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StackPtr untrusted(sk_X509_new_null());
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  bool ok = store && untrusted && ctx &&
            X509_STORE_add_cert(store.get(), trust.issuer_chain.back().get()) == 1;
  for (std::size_t i = 0; ok && i + 1 < trust.issuer_chain.size(); ++i) {
    ok = X509_up_ref(trust.issuer_chain[i].get()) == 1 &&
         sk_X509_push(untrusted.get(), trust.issuer_chain[i].get()) > 0;
  }
  for (const auto& crl : trust.crls) {
    ok = ok && X509_STORE_add_crl(store.get(), crl.get()) == 1;
  }
  ok = ok &&
       X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) == 1 &&
       X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) == 1;
  if (!ok) {
    crypto::drain_openssl_errors();
    return reject(Failure::kInternal, "cannot set up certificate verification");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(to_unix_seconds(now)));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int code = X509_STORE_CTX_get_error(ctx.get());
    crypto::drain_openssl_errors();
    return reject(code == X509_V_ERR_CERT_REVOKED ? Failure::kRevoked : Failure::kBadCertificate,
                  fmt::format("certificate of {}: {}", cn, X509_verify_cert_error_string(code)));
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  if (chain == nullptr || sk_X509_num(chain) < 2 ||
      X509_cmp(sk_X509_value(chain, 1), trust.issuer_chain.front().get()) != 0 ||
      X509_check_ca(leaf.get()) != 0) {
    return reject(Failure::kBadCertificate,
                  fmt::format("certificate of {} is not a leaf of the expected CA", cn));
  }
  crypto::PkeyPtr key(X509_get_pubkey(leaf.get()));
  if (!key || !crypto::is_p256_key(key.get())) {
    crypto::drain_openssl_errors();
    return reject(Failure::kBadCertificate, "the peer's key is not P-256");
  }
  return key;
}

HandshakeInputs HandshakeInputs::fresh(const Clock& clock) {
  HandshakeInputs in;
  in.ephemeral = detail::x25519_generate();
  in.nonce.resize(kNonceBytes);
  std::array<unsigned char, 4> id{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(in.nonce.data()), kNonceBytes) != 1 ||
      RAND_bytes(id.data(), id.size()) != 1) {
    crypto::throw_openssl_error("RAND_bytes");
  }
  in.session_id = static_cast<std::uint32_t>(detail::get_be(id.data(), 4));
  in.time_ms = unix_ms(clock.now());
  return in;
}

Checked<InitMessage> parse_init(std::string_view bytes) {
  detail::ByteReader r(bytes);
  InitMessage m;
  if (auto h = check_header(r, bytes, MessageType::kInit, true, &m.suite); !h) {
    return h.error();
  }
  auto session = r.integer(4);
  auto time = r.integer(8);
  auto nonce = r.take(kNonceBytes);
  auto eph = r.take(detail::kX25519Bytes);
  auto rec = r.prefixed(1);
  auto member = r.prefixed(1);
  if (!session || !time || !nonce || !eph || !rec || !member) {
    return reject(Failure::kTruncated, "init shorter than its fields");
  }
  if (rec->empty() || rec->size() > kMaxIdBytes || member->empty() ||
      member->size() > kMaxIdBytes) {
    return reject(Failure::kMalformed, "rec or member ID length");
  }
  m.session_id = static_cast<std::uint32_t>(*session);
  m.time_ms = *time;
  m.nonce = *nonce;
  m.ephemeral = *eph;
  m.rec = *rec;
  m.member = *member;
  if (auto tail = read_tail(r, bytes, m); !tail) {
    return tail.error();
  }
  return m;
}

Checked<ResponseMessage> parse_response(std::string_view bytes) {
  detail::ByteReader r(bytes);
  ResponseMessage m;
  if (auto h = check_header(r, bytes, MessageType::kResponse, true, &m.suite); !h) {
    return h.error();
  }
  auto session = r.integer(4);
  auto time = r.integer(8);
  auto nonce = r.take(kNonceBytes);
  auto eph = r.take(detail::kX25519Bytes);
  auto init_hash = r.take(detail::kHashBytes);
  if (!session || !time || !nonce || !eph || !init_hash) {
    return reject(Failure::kTruncated, "response shorter than its fields");
  }
  m.session_id = static_cast<std::uint32_t>(*session);
  m.time_ms = *time;
  m.nonce = *nonce;
  m.ephemeral = *eph;
  m.init_hash = *init_hash;
  if (auto tail = read_tail(r, bytes, m); !tail) {
    return tail.error();
  }
  return m;
}

Checked<HelloMessage> parse_hello(std::string_view bytes) {
  detail::ByteReader r(bytes);
  HelloMessage m;
  if (auto h = check_header(r, bytes, MessageType::kHello, false, nullptr); !h) {
    return h.error();
  }
  auto time = r.integer(8);
  auto nonce = r.take(kNonceBytes);
  auto rec = r.prefixed(1);
  auto member = r.prefixed(1);
  if (!time || !nonce || !rec || !member) {
    return reject(Failure::kTruncated, "hello shorter than its fields");
  }
  if (rec->empty() || rec->size() > kMaxIdBytes || member->empty() ||
      member->size() > kMaxIdBytes) {
    return reject(Failure::kMalformed, "rec or member ID length");
  }
  m.time_ms = *time;
  m.nonce = *nonce;
  m.rec = *rec;
  m.member = *member;
  if (auto tail = read_tail(r, bytes, m); !tail) {
    return tail.error();
  }
  return m;
}

PlatformHandshake::PlatformHandshake(const Credentials& own, std::string rec, std::string member,
                                     Suite suite, HandshakeInputs inputs)
    : rec_(std::move(rec)),
      member_(std::move(member)),
      suite_(suite),
      session_id_(inputs.session_id),
      ephemeral_(std::move(inputs.ephemeral)) {
  put_header(init_, MessageType::kInit, static_cast<std::uint8_t>(suite));
  detail::append_be(init_, session_id_, 4);
  detail::append_be(init_, inputs.time_ms, 8);
  init_.append(inputs.nonce);
  init_.append(detail::x25519_public(ephemeral_.get()));
  append_prefixed(init_, rec_, 1);
  append_prefixed(init_, member_, 1);
  append_prefixed(init_, own.certificate_der, 2);
  sign_into(init_, kInitContext, own.key.get());
}

Checked<PlatformHandshake> PlatformHandshake::from_recorded(std::string_view init,
                                                            crypto::PkeyPtr ephemeral) {
  auto m = parse_init(init);
  if (!m) {
    return m.error();
  }
  PlatformHandshake h;
  h.rec_ = std::string(m->rec);
  h.member_ = std::string(m->member);
  h.suite_ = m->suite;
  h.session_id_ = m->session_id;
  h.ephemeral_ = std::move(ephemeral);
  h.init_ = std::string(init);
  return h;
}

Checked<SessionKeys> PlatformHandshake::finish(std::string_view response, const PeerTrust& gateway,
                                               const E2eSettings& settings,
                                               const Clock& clock) const {
  auto m = parse_response(response);
  if (!m) {
    return m.error();
  }
  if (m->session_id != session_id_) {
    return reject(Failure::kUnknownSession, "response to another handshake");
  }
  try {
    if (CRYPTO_memcmp(m->init_hash.data(), detail::sha256(init_).data(), detail::kHashBytes) != 0) {
      return reject(Failure::kTampered, "response bound to another init");
    }
    if (m->suite != suite_) {
      return reject(Failure::kUnsupportedSuite, "response changed the suite");
    }
    if (auto fresh = check_fresh(m->time_ms, settings, clock); !fresh) {
      return fresh.error();
    }
    auto key = verify_peer_certificate(gateway, m->certificate, clock.now());
    if (!key) {
      return key.error();
    }
    if (auto sig = check_signature(key->get(), kResponseContext, m->signed_part, m->signature);
        !sig) {
      return sig.error();
    }
    auto shared = detail::x25519_derive(ephemeral_.get(), m->ephemeral);
    if (!shared) {
      return reject(Failure::kTampered, "unusable ephemeral key");
    }
    return derive_session_keys(*shared, init_, response, session_id_, suite_,
                               Direction::kPlatformToMember);
  } catch (const std::exception& e) {
    return reject(Failure::kInternal, e.what());
  }
}

Checked<Responded> respond_to_init(const Credentials& own, std::string_view rec,
                                   std::string_view member, std::string_view init,
                                   const PeerTrust& platform, const E2eSettings& settings,
                                   const Clock& clock, HandshakeInputs inputs) {
  auto m = parse_init(init);
  if (!m) {
    return m.error();
  }
  try {
    if (auto fresh = check_fresh(m->time_ms, settings, clock); !fresh) {
      return fresh.error();
    }
    auto key = verify_peer_certificate(platform, m->certificate, clock.now());
    if (!key) {
      return key.error();
    }
    if (auto sig = check_signature(key->get(), kInitContext, m->signed_part, m->signature); !sig) {
      return sig.error();
    }
    // Signed by the engine but for another member: a reflection or a misrouted init.
    if (m->rec != rec || m->member != member) {
      return reject(Failure::kWrongMember,
                    fmt::format("init for {}", gateway_name(m->rec.substr(0, kMaxIdBytes),
                                                            m->member.substr(0, kMaxIdBytes))));
    }
    auto shared = detail::x25519_derive(inputs.ephemeral.get(), m->ephemeral);
    if (!shared) {
      return reject(Failure::kTampered, "unusable ephemeral key");
    }
    Responded out;
    put_header(out.response, MessageType::kResponse, static_cast<std::uint8_t>(m->suite));
    detail::append_be(out.response, m->session_id, 4);
    detail::append_be(out.response, inputs.time_ms, 8);
    out.response.append(inputs.nonce);
    out.response.append(detail::x25519_public(inputs.ephemeral.get()));
    out.response.append(detail::sha256(init));
    append_prefixed(out.response, own.certificate_der, 2);
    sign_into(out.response, kResponseContext, own.key.get());
    out.keys = derive_session_keys(*shared, init, out.response, m->session_id, m->suite,
                                   Direction::kMemberToPlatform);
    out.init_time_ms = m->time_ms;
    return out;
  } catch (const std::exception& e) {
    return reject(Failure::kInternal, e.what());
  }
}

std::string make_hello(const Credentials& own, std::string_view rec, std::string_view member,
                       const HandshakeInputs& inputs) {
  std::string out;
  put_header(out, MessageType::kHello, 0);
  detail::append_be(out, inputs.time_ms, 8);
  out.append(inputs.nonce);
  append_prefixed(out, rec, 1);
  append_prefixed(out, member, 1);
  append_prefixed(out, own.certificate_der, 2);
  sign_into(out, kHelloContext, own.key.get());
  return out;
}

Checked<std::monostate> verify_hello(std::string_view hello, std::string_view rec,
                                     std::string_view member, const PeerTrust& gateway,
                                     const E2eSettings& settings, const Clock& clock) {
  auto m = parse_hello(hello);
  if (!m) {
    return m.error();
  }
  try {
    if (auto fresh = check_fresh(m->time_ms, settings, clock); !fresh) {
      return fresh.error();
    }
    auto key = verify_peer_certificate(gateway, m->certificate, clock.now());
    if (!key) {
      return key.error();
    }
    if (auto sig = check_signature(key->get(), kHelloContext, m->signed_part, m->signature); !sig) {
      return sig.error();
    }
    if (m->rec != rec || m->member != member) {
      return reject(Failure::kWrongMember, "hello for another member's topic");
    }
    return std::monostate{};
  } catch (const std::exception& e) {
    return reject(Failure::kInternal, e.what());
  }
}

}  // namespace recmesh::e2e
