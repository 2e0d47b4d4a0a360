// Device certificate issuance against the raw ECDSA signing speed of the same OpenSSL
// (docs/benchmarks.md, section "pki"). Single-threaded; medians over repetitions.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/vfs.h>
#include <thread>
#include <vector>

#include <climits>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/crypto/openssl_error.hpp"
#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/crypto/pem.hpp"
#include "recmesh/pki/pki.hpp"

#include "bench_command_line.hpp"
#include "bench_process.hpp"
#include "bench_stats.hpp"

namespace recmesh::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kMessageBytes = 400;  // about the TBSCertificate of a device certificate
constexpr double kTargetRatio = 0.3;
constexpr std::string_view kPassphrase = "bench-pki-passphrase";
constexpr std::string_view kRec = "bench";
constexpr std::string_view kMember = "m1";

struct Options {
  bool quick = false;
  int certificates = 10000;  // issued by one issue_many call, and by 100-sized batches
  int batch_size = 100;
  int single_certificates = 200;  // issued by one Pki::issue call (one transaction) each
  int repetitions = 5;
  int revocations = 5;    // revoke samples per repetition, one certificate each
  int crl_refreshes = 3;  // refresh_crls samples per repetition
  std::chrono::milliseconds sign_budget{500};  // per ECDSA sample; three samples a repetition
};

// Figures of one repetition.
struct Sample {
  std::vector<double> signs_per_s;
  double certs_per_s = 0;        // in memory: signed and recorded, returned to the caller
  double certs_per_s_files = 0;  // and exported as cert/chain/key files
  double certs_per_s_batch = 0;
  double certs_per_s_single = 0;
  std::vector<double> revoke_ms;
  std::vector<double> refresh_ms;
};

double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

double timed_ms(const std::function<void()>& body) {
  const auto start = SteadyClock::now();
  body();
  return seconds_since(start) * 1000.0;
}

// Durability costs depend on it, so the report names it.
std::string filesystem_type(const fs::path& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) {
    return "unknown";
  }
  struct Known {
    unsigned long magic;
    std::string_view name;
  };
  constexpr std::array<Known, 6> kKnown{{{0xEF53, "ext4"},
                                         {0x01021994, "tmpfs"},
                                         {0x58465342, "xfs"},
                                         {0x9123683E, "btrfs"},
                                         {0x794C7630, "overlayfs"},
                                         {0x2FC12FC1, "zfs"}}};
  const auto magic = static_cast<unsigned long>(info.f_type);
  for (const auto& known : kKnown) {
    if (known.magic == magic) {
      return std::string(known.name);
    }
  }
  return fmt::format("0x{:x}", magic);
}

// One ECDSA P-256 signature as X509_sign makes it: a fresh DigestSign over SHA-256.
void sign_once(EVP_MD_CTX* ctx, EVP_PKEY* key, std::span<const unsigned char> message,
               std::span<unsigned char> signature) {
  std::size_t length = signature.size();
  if (EVP_MD_CTX_reset(ctx) != 1 ||
      EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx, signature.data(), &length, message.data(), message.size()) != 1) {
    crypto::throw_openssl_error("EVP_DigestSign");
  }
}

double ecdsa_signatures_per_second(std::chrono::milliseconds budget) {
  const crypto::PkeyPtr key = crypto::generate_p256_key();
  std::array<unsigned char, kMessageBytes> message{};
  if (RAND_bytes(message.data(), static_cast<int>(message.size())) != 1) {
    crypto::throw_openssl_error("RAND_bytes");
  }
  std::array<unsigned char, 128> signature{};  // a DER P-256 signature has at most 72 bytes
  const crypto::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) {
    crypto::throw_openssl_error("EVP_MD_CTX_new");
  }
  constexpr int kChunk = 64;
  for (int i = 0; i < kChunk; ++i) {  // warm-up: provider fetches, caches
    sign_once(ctx.get(), key.get(), message, signature);
  }
  const double limit = std::chrono::duration<double>(budget).count();
  long long count = 0;
  const auto start = SteadyClock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < kChunk; ++i) {
      sign_once(ctx.get(), key.get(), message, signature);
    }
    count += kChunk;
    elapsed = seconds_since(start);
  } while (elapsed < limit);
  return static_cast<double>(count) / elapsed;
}

pki::Identity device(int index) {
  return pki::Identity::make(pki::IdentityKind::kDevice, std::string(kRec), std::string(kMember),
                             fmt::format("d{}", index));
}

std::vector<pki::IssueRequest> device_requests(int first, int count) {
  std::vector<pki::IssueRequest> requests(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    requests[static_cast<std::size_t>(i)].identity = device(first + i);
  }
  return requests;
}

// A new PKI with one REC and one member: the CA that signs every device certificate.
pki::Pki member_pki(const fs::path& dir) {
  pki::Pki pki = pki::Pki::create(dir, Secret(std::string(kPassphrase)));
  pki.add_rec(std::string(kRec));
  pki.add_member(std::string(kRec), std::string(kMember));
  return pki;
}

void require(bool condition, std::string_view what) {
  if (!condition) {
    throw Error(ErrorCode::kInternal, fmt::format("sanity check failed: {}", what));
  }
}

// The chain a device presents must verify, and fail as revoked once its CRL says so.
void check_verifies(const pki::Pki& pki, const pki::CertificateRecord& record, bool revoked) {
  const pki::VerifyResult result = pki.verify(read_file(pki.files_of(record).chain));
  if (revoked) {
    require(!result.valid && result.openssl_error == X509_V_ERR_CERT_REVOKED,
            fmt::format("{} should verify as revoked, got: {}", record.common_name, result.reason));
  } else {
    require(result.valid, fmt::format("{} does not verify: {}", record.common_name, result.reason));
  }
}

// issue_many as an enrolment API or a simulator uses it: each certificate signed, recorded in
// pki.db (one transaction), and handed back with its key in memory; no files.
void measure_in_memory(const Options& options, const fs::path& dir, Sample& sample) {
  pki::Pki pki = member_pki(dir);
  auto requests = device_requests(0, options.certificates);
  for (auto& request : requests) {
    request.write_files = false;
  }
  const auto start = SteadyClock::now();
  const auto issued = pki.issue_many(requests);
  sample.certs_per_s = options.certificates / seconds_since(start);
  require(issued.size() == requests.size() && !issued.back().key_pem.empty(),
          "issue_many returned every certificate with its key");
  require(pki.verify(issued.back().chain_pem).valid, "an in-memory chain verifies");
}

// issue_many of every certificate in one call, then revocations and CRL refreshes in that PKI.
void measure_issue_many(const Options& options, const fs::path& dir, Sample& sample) {
  pki::Pki pki = member_pki(dir);
  const auto requests = device_requests(0, options.certificates);

  const auto start = SteadyClock::now();
  const auto issued = pki.issue_many(requests);
  sample.certs_per_s_files = options.certificates / seconds_since(start);
  require(issued.size() == requests.size(), "issue_many returned every certificate");
  check_verifies(pki, issued.front().record, false);

  for (int i = 0; i < options.revocations; ++i) {
    const int index = (options.certificates / 2 + i * 997) % options.certificates;
    pki::RevocationTarget target;
    target.common_name = device(index).common_name();
    pki::RevocationResult result;
    sample.revoke_ms.push_back(timed_ms([&] { result = pki.revoke(target); }));
    require(result.revoked_serials.size() == 1 && result.crls_updated.size() == 1,
            "revoke touched one certificate and one CRL");
    if (i == 0) {
      check_verifies(pki, issued[static_cast<std::size_t>(index)].record, true);
    }
  }
  for (int i = 0; i < options.crl_refreshes; ++i) {
    sample.refresh_ms.push_back(timed_ms([&] { pki.refresh_crls(); }));
  }
}

void measure_batches(const Options& options, const fs::path& dir, Sample& sample) {
  pki::Pki pki = member_pki(dir);
  std::vector<std::vector<pki::IssueRequest>> batches;
  for (int first = 0; first < options.certificates; first += options.batch_size) {
    batches.push_back(
        device_requests(first, std::min(options.batch_size, options.certificates - first)));
  }
  const auto start = SteadyClock::now();
  for (const auto& batch : batches) {
    pki.issue_many(batch);
  }
  sample.certs_per_s_batch = options.certificates / seconds_since(start);
}

void measure_single(const Options& options, const fs::path& dir, Sample& sample) {
  pki::Pki pki = member_pki(dir);
  const auto requests = device_requests(0, options.single_certificates);
  const auto start = SteadyClock::now();
  for (const auto& request : requests) {
    pki.issue(request);
  }
  sample.certs_per_s_single = options.single_certificates / seconds_since(start);
}

Sample run_repetition(const Options& options, const fs::path& dir) {
  Sample sample;
  // ECDSA samples sit between the phases so that both figures of the ratio see the same
  // machine state.
  sample.signs_per_s.push_back(ecdsa_signatures_per_second(options.sign_budget));
  measure_in_memory(options, dir / "in_memory", sample);
  measure_issue_many(options, dir / "issue_many", sample);
  sample.signs_per_s.push_back(ecdsa_signatures_per_second(options.sign_budget));
  measure_batches(options, dir / "batches", sample);
  sample.signs_per_s.push_back(ecdsa_signatures_per_second(options.sign_budget));
  measure_single(options, dir / "single", sample);
  return sample;
}

constexpr std::string_view kUsage =
    "usage: recmesh-bench-pki [--quick] [--certificates N] [--repetitions N]\n"
    "  --quick           2 repetitions instead of 5 (about a minute)\n"
    "  --certificates N  certificates per issue_many run (default 10000)\n"
    "  --repetitions N   override the number of repetitions\n";

// What --quick and the flags leave to settle once all are read: an explicit --repetitions wins
// over --quick in any order, and the smaller runs never exceed --certificates.
Options settled(Options options, std::optional<int> repetitions) {
  if (options.quick) {
    options.repetitions = 2;
    options.revocations = 3;
    options.sign_budget = std::chrono::milliseconds(300);
  }
  options.repetitions = repetitions.value_or(options.repetitions);
  options.single_certificates = std::min(options.single_certificates, options.certificates);
  options.batch_size = std::min(options.batch_size, options.certificates);
  return options;
}

int run(const Options& options) {
  // One scratch directory per run, not per phase: ext4 without a journal skips inodes freed in the
  // last minutes when it allocates new ones, so deleting a phase's 30,000 files would slow down the
  // next phase.
  const ScratchDirectory scratch("recmesh-bench-pki");
  fmt::print("pki benchmark: {} repetitions{}, {} certificates per run, single-threaded\n",
             options.repetitions, options.quick ? " (--quick)" : "", options.certificates);
  fmt::print("  {} | {} cores | scratch {} ({})\n", OpenSSL_version(OPENSSL_VERSION),
             std::thread::hardware_concurrency(), scratch.path().string(),
             filesystem_type(scratch.path()));
  static_cast<void>(std::fflush(stdout));

  std::vector<double> signs, certs, certs_files, batch, single, revoke_ms, refresh_ms;
  for (int rep = 1; rep <= options.repetitions; ++rep) {
    const Sample s = run_repetition(options, scratch.path() / fmt::format("rep{}", rep));
    fmt::print(
        "  rep {}/{}: ecdsa {:.0f} sig/s | in memory {:.0f} certs/s | with files {:.0f} certs/s | "
        "batches of {} {:.0f} certs/s | issue x{} {:.1f} certs/s | revoke {:.1f} ms | "
        "refresh_crls {:.1f} ms\n",
        rep, options.repetitions, median(s.signs_per_s), s.certs_per_s, s.certs_per_s_files,
        options.batch_size, s.certs_per_s_batch, options.single_certificates, s.certs_per_s_single,
        median(s.revoke_ms), median(s.refresh_ms));
    static_cast<void>(std::fflush(stdout));
    signs.insert(signs.end(), s.signs_per_s.begin(), s.signs_per_s.end());
    certs.push_back(s.certs_per_s);
    certs_files.push_back(s.certs_per_s_files);
    batch.push_back(s.certs_per_s_batch);
    single.push_back(s.certs_per_s_single);
    revoke_ms.insert(revoke_ms.end(), s.revoke_ms.begin(), s.revoke_ms.end());
    refresh_ms.insert(refresh_ms.end(), s.refresh_ms.begin(), s.refresh_ms.end());
  }

  const double sign_rate = median(signs);
  const double cert_rate = median(certs);
  const double ratio = cert_rate / sign_rate;
  const double files_rate = median(certs_files);
  const double ratio_files = files_rate / sign_rate;
  const bool meets = ratio >= kTargetRatio;
  fmt::print("\nmedians:\n");
  fmt::print("  {:<52} {:>10.0f} /s\n", "ECDSA P-256 signatures (SHA-256, 400-byte message)",
             sign_rate);
  fmt::print("  {:<52} {:>10.0f} certs/s\n",
             fmt::format("issue_many, {} in one call, in memory", options.certificates), cert_rate);
  fmt::print("  {:<52} {:>10.0f} certs/s\n",
             fmt::format("issue_many, {} in one call, with files", options.certificates),
             files_rate);
  fmt::print("  {:<52} {:>10.0f} certs/s\n",
             fmt::format("issue_many, {} calls of {}",
                         (options.certificates + options.batch_size - 1) / options.batch_size,
                         options.batch_size),
             median(batch));
  fmt::print("  {:<52} {:>10.1f} certs/s ({:.1f} ms per call)\n",
             fmt::format("issue, {} calls of 1", options.single_certificates), median(single),
             1000.0 / median(single));
  fmt::print("  {:<52} {:>10.1f} ms\n",
             fmt::format("revoke 1 of {} (+ CRL re-signed)", options.certificates),
             median(revoke_ms));
  fmt::print("  {:<52} {:>10.1f} ms\n", "refresh_crls (every CA of the PKI)", median(refresh_ms));
  fmt::print("  {:<52} {:>10.3f} (target >= {}: {})\n", "ratio in-memory certs/s / signatures/s",
             ratio, kTargetRatio, meets ? "met" : "NOT met");
  fmt::print("  {:<52} {:>10.3f}\n", "ratio with files", ratio_files);
  fmt::print(
      "{{\"benchmark\":\"pki\",\"certificates\":{},\"certs_per_s\":{:.1f},"
      "\"certs_per_s_files\":{:.1f},\"ratio_files\":{:.4f},\"certs_per_s_batch100\":{:.1f},\"certs_"
      "per_s_single\":{:.1f},\"ecdsa_sign_per_s\":{:.1f},"
      "\"ratio\":{:.4f},\"target_ratio\":{},\"meets_target\":{},\"revoke_one_of_10000_ms\":{:.2f},"
      "\"refresh_crls_ms\":{:.2f},\"batch_size\":{},\"single_certificates\":{},"
      "\"repetitions\":{},\"quick\":{}}}\n",
      options.certificates, cert_rate, files_rate, ratio_files, median(batch), median(single),
      sign_rate, ratio, kTargetRatio, meets, median(revoke_ms), median(refresh_ms),
      options.batch_size, options.single_certificates, options.repetitions, options.quick);
  return 0;
}

}  // namespace
}  // namespace recmesh::bench

int main(int argc, char** argv) {
  recmesh::bench::Options options;
  std::optional<int> repetitions;
  const recmesh::bench::BenchCommandLine command_line =
      recmesh::bench::BenchCommandLine("recmesh-bench-pki", std::string(recmesh::bench::kUsage))
          .on_quick([&] { options.quick = true; })
          .integer("--certificates", 1, 100'000'000, [&](int n) { options.certificates = n; })
          .integer("--repetitions", 1, INT_MAX, [&](int n) { repetitions = n; });
  if (const auto exit_code = command_line.parse(argc, argv)) {
    return *exit_code;
  }
  return command_line.run(
      [&] { return recmesh::bench::run(recmesh::bench::settled(options, repetitions)); });
}
