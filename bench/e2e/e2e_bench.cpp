// Cost of the end-to-end envelope against plain AES-256-GCM EVP calls with a key already set
// up — the least any AEAD protection can cost (docs/benchmarks.md, section "e2e"). Also encodes
// the same fields as a COSE_Encrypt0 (RFC 9052) to compare overheads. Single-threaded; medians
// over repetitions.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "recmesh/core/clock.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/e2e/session.hpp"

namespace recmesh::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using CipherCtxPtr = crypto::OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using CipherPtr = crypto::OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free>;

constexpr std::string_view kTopic = "/r1/m1/metrics/aggregate";

struct Options {
  bool quick = false;
  int messages = 200000;  // per repetition and payload size
  int repetitions = 7;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

template <typename F>
double per_message_us(int n, F&& body) {
  const auto start = SteadyClock::now();
  for (int i = 0; i < n; ++i) {
    body(i);
  }
  return std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count() / n;
}

// The peer: one AES-256-GCM context keyed once, a fresh 12-byte nonce per message, the topic as
// AAD, ciphertext || tag out — what a caller of OpenSSL writes without any framing.
class PlainGcm {
 public:
  explicit PlainGcm(bool encrypt) : ctx_(EVP_CIPHER_CTX_new()) {
    std::array<unsigned char, 32> key{};
    RAND_bytes(key.data(), key.size());
    EVP_CipherInit_ex2(ctx_.get(), cipher_.get(), key.data(), nullptr, encrypt ? 1 : 0, nullptr);
  }
  void seal(std::uint64_t counter, std::string_view plaintext, std::string& out) {
    std::array<unsigned char, 12> nonce{};
    std::memcpy(nonce.data() + 4, &counter, sizeof counter);
    out.resize(plaintext.size() + 16);
    int n = 0;
    auto* dst = reinterpret_cast<unsigned char*>(out.data());
    EVP_CipherInit_ex2(ctx_.get(), nullptr, nullptr, nonce.data(), 1, nullptr);
    EVP_CipherUpdate(ctx_.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(kTopic.data()),
                     static_cast<int>(kTopic.size()));
    EVP_CipherUpdate(ctx_.get(), dst, &n, reinterpret_cast<const unsigned char*>(plaintext.data()),
                     static_cast<int>(plaintext.size()));
    EVP_CipherFinal_ex(ctx_.get(), dst + n, &n);
    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_GET_TAG, 16, dst + plaintext.size());
  }
  bool open(std::uint64_t counter, std::string_view sealed, std::string& out) {
    std::array<unsigned char, 12> nonce{};
    std::memcpy(nonce.data() + 4, &counter, sizeof counter);
    std::array<unsigned char, 16> tag{};
    std::memcpy(tag.data(), sealed.data() + sealed.size() - 16, 16);
    out.resize(sealed.size() - 16);
    int n = 0;
    auto* dst = reinterpret_cast<unsigned char*>(out.data());
    EVP_CipherInit_ex2(ctx_.get(), nullptr, nullptr, nonce.data(), 0, nullptr);
    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_SET_TAG, 16, tag.data());
    EVP_CipherUpdate(ctx_.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(kTopic.data()),
                     static_cast<int>(kTopic.size()));
    EVP_CipherUpdate(ctx_.get(), dst, &n, reinterpret_cast<const unsigned char*>(sealed.data()),
                     static_cast<int>(out.size()));
    return EVP_CipherFinal_ex(ctx_.get(), dst + n, &n) == 1;
  }
  // Both ends must share the key: the opener copies the sealer's context.
  void share_key_with(PlainGcm& other) const { EVP_CIPHER_CTX_copy(other.ctx_.get(), ctx_.get()); }

 private:
  CipherPtr cipher_{EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr)};
  CipherCtxPtr ctx_;
};

// ---- COSE_Encrypt0 (RFC 9052 §5.2) with the same fields, for the size comparison ----------

void cbor_head(std::string& out, std::uint8_t major, std::uint64_t value) {
  const auto m = static_cast<std::uint8_t>(major << 5);
  if (value < 24) {
    out.push_back(static_cast<char>(m | value));
    return;
  }
  int bytes = value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x100000000ULL ? 4 : 8;
  out.push_back(static_cast<char>(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27)));
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
}
void cbor_bytes(std::string& out, std::string_view b) {
  cbor_head(out, 2, b.size());
  out.append(b);
}
std::string minimal_be(std::uint64_t v) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>(v & 0xFF));
    v >>= 8;
  } while (v != 0);
  return out;
}

// Untagged COSE_Encrypt0: protected {1: 3 (A256GCM), -65537: timestamp ms}, unprotected
// {4: kid (session id + epoch + direction, 6 bytes), 6: partial IV (the sequence, minimal)},
// ciphertext || tag. Only its size matters here: the ciphertext is sealed as the peer seals
// (a real one authenticates the Enc_structure, which does not change the size).
std::string cose_encrypt0(std::uint64_t sequence, std::uint64_t timestamp_ms,
                          std::string_view plaintext, PlainGcm& gcm) {
  std::string protected_map;
  cbor_head(protected_map, 5, 2);
  cbor_head(protected_map, 0, 1);
  cbor_head(protected_map, 0, 3);
  cbor_head(protected_map, 1, 65536);  // label -65537 (private use)
  cbor_head(protected_map, 0, timestamp_ms);
  std::string out;
  cbor_head(out, 4, 3);
  cbor_bytes(out, protected_map);
  cbor_head(out, 5, 2);
  cbor_head(out, 0, 4);
  cbor_bytes(out, std::string("\x5e\x55\x10\x11\x00\x01", 6));
  cbor_head(out, 0, 6);
  cbor_bytes(out, minimal_be(sequence));
  std::string sealed;
  gcm.seal(sequence, plaintext, sealed);
  cbor_bytes(out, sealed);
  return out;
}

struct Figures {
  double seal_us = 0, open_us = 0, evp_seal_us = 0, evp_open_us = 0;
};

Figures measure(std::size_t payload_bytes, const Options& o) {
  std::string payload(payload_bytes, 'x');
  const std::string shared(32, '\x42');
  const auto platform_keys = e2e::derive_session_keys(shared, "i", "r", 1, e2e::Suite::kAes256Gcm,
                                                      e2e::Direction::kPlatformToMember);
  const auto member_keys = e2e::derive_session_keys(shared, "i", "r", 1, e2e::Suite::kAes256Gcm,
                                                    e2e::Direction::kMemberToPlatform);
  std::vector<double> seal, open, evp_seal, evp_open;
  for (int r = 0; r < o.repetitions; ++r) {
    e2e::E2eSettings settings;
    settings.rotate_after_messages = std::uint64_t{1} << 32;
    e2e::Session sender(member_keys, settings, SystemClock::instance());
    e2e::Session receiver(platform_keys, settings, SystemClock::instance());
    std::vector<std::string> sealed(static_cast<std::size_t>(o.messages));
    seal.push_back(per_message_us(o.messages, [&](int i) {
      sealed[static_cast<std::size_t>(i)] = sender.seal(kTopic, payload).value();
    }));
    std::size_t opened = 0;
    open.push_back(per_message_us(o.messages, [&](int i) {
      opened += receiver.open(kTopic, sealed[static_cast<std::size_t>(i)]).ok() ? 1U : 0U;
    }));
    if (opened != sealed.size()) {
      fmt::print(stderr, "e2e: {} of {} envelopes did not open\n", sealed.size() - opened,
                 sealed.size());
      std::exit(1);
    }
    PlainGcm gcm_seal(true);
    PlainGcm gcm_open(false);
    gcm_seal.share_key_with(gcm_open);
    std::vector<std::string> plain(static_cast<std::size_t>(o.messages));
    evp_seal.push_back(per_message_us(o.messages, [&](int i) {
      gcm_seal.seal(static_cast<std::uint64_t>(i), payload, plain[static_cast<std::size_t>(i)]);
    }));
    std::string out;
    std::size_t ok = 0;
    evp_open.push_back(per_message_us(o.messages, [&](int i) {
      ok += gcm_open.open(static_cast<std::uint64_t>(i), plain[static_cast<std::size_t>(i)], out)
                ? 1U
                : 0U;
    }));
    if (ok != plain.size()) {
      fmt::print(stderr, "e2e: plain GCM did not open\n");
      std::exit(1);
    }
  }
  return {median(seal), median(open), median(evp_seal), median(evp_open)};
}

int run(const Options& o) {
  fmt::print("e2e envelope: {} messages x {} repetitions per size, medians\n", o.messages,
             o.repetitions);
  PlainGcm gcm(true);
  const std::uint64_t now_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  const std::string payload(64, 'x');
  const std::size_t cose_first = cose_encrypt0(1, now_ms, payload, gcm).size() - payload.size();
  const std::size_t cose_large =
      cose_encrypt0(std::uint64_t{1} << 32, now_ms, payload, gcm).size() - payload.size();
  fmt::print(
      "overhead: recmesh envelope {} B (fixed); COSE_Encrypt0 with the same fields {} B "
      "at sequence 1, {} B at sequence 2^32; bare AES-GCM tag 16 B\n",
      e2e::kEnvelopeOverhead, cose_first, cose_large);
  Figures small;
  Figures large;
  for (const std::size_t size : {std::size_t{64}, std::size_t{1024}}) {
    const Figures f = measure(size, o);
    fmt::print(
        "{:>5} B payload: seal {:.3f} us, open {:.3f} us | plain AES-GCM EVP seal {:.3f} us, "
        "open {:.3f} us | ratio (seal+open) {:.2f}\n",
        size, f.seal_us, f.open_us, f.evp_seal_us, f.evp_open_us,
        (f.seal_us + f.open_us) / (f.evp_seal_us + f.evp_open_us));
    (size == 64 ? small : large) = f;
  }
  fmt::print(
      "{{\"e2e_overhead_bytes\":{},\"seal_us\":{:.3f},\"open_us\":{:.3f},\"evp_seal_us\":{:.3f},"
      "\"evp_open_us\":{:.3f},\"seal_us_1k\":{:.3f},\"open_us_1k\":{:.3f},\"evp_seal_us_1k\":{:.3f}"
      ","
      "\"evp_open_us_1k\":{:.3f},\"cose_overhead_bytes\":{},\"cose_overhead_bytes_seq32\":{}}}\n",
      e2e::kEnvelopeOverhead, small.seal_us, small.open_us, small.evp_seal_us, small.evp_open_us,
      large.seal_us, large.open_us, large.evp_seal_us, large.evp_open_us, cose_first, cose_large);
  return 0;
}

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      o.quick = true;
      o.messages = 50000;
      o.repetitions = 3;
    } else if (arg == "--messages" && i + 1 < argc) {
      o.messages = std::atoi(argv[++i]);
    } else if (arg == "--repetitions" && i + 1 < argc) {
      o.repetitions = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: recmesh-bench-e2e [--quick] [--messages N] [--repetitions N]\n");
      return 2;
    }
  }
  if (o.messages < 1 || o.repetitions < 1) {
    std::fprintf(stderr, "--messages and --repetitions must be positive\n");
    return 2;
  }
  return recmesh::bench::run(o);
}
