#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "recmesh/crypto/openssl_ptr.hpp"
#include "recmesh/e2e/handshake.hpp"

namespace recmesh::e2e {

// What stat() says of a file: a rewrite (write_file_atomic renames a new inode in), a new size or
// a new modification time makes it differ.
struct FileStamp {
  std::uintmax_t device = 0;
  std::uintmax_t inode = 0;
  std::intmax_t size = -1;  // -1: the file does not exist
  std::timespec modified{};
  std::timespec changed{};

  static FileStamp of(const std::filesystem::path& file);
  bool operator==(const FileStamp& other) const;
};

// The trust of each peer, read from a PKI directory (docs/pki.md layout) once and kept between
// handshakes: each get() checks with one stat() per file whether the chain, a CA certificate or
// a CRL it came from changed, and reads them again if so, so a CRL published since the last
// handshake is honoured at the next one. PeerTrust::from_pki_dir reads and parses the chain and
// every CA certificate of the directory on each call, which a platform with many members pays
// at every handshake. Not thread-safe: one event loop uses it.
class PkiTrustStore {
 public:
  explicit PkiTrustStore(std::filesystem::path pki_dir);

  // The trust in a leaf `common_name` issued by CA `authority_id` (see PeerTrust). Throws
  // Error(kNotFound or kDataLoss) as PeerTrust::from_pki_dir does.
  PeerTrust get(const std::string& authority_id, std::string common_name);

  // Reads of the PKI files so far (first reads and re-reads after a change).
  std::uint64_t loads() const { return loads_; }

 private:
  struct Entry {
    PeerTrust trust;
    std::vector<std::pair<std::filesystem::path, FileStamp>> sources;
  };
  struct CaCertificate {
    FileStamp stamp;
    crypto::X509Ptr certificate;
  };

  Entry load(const std::string& authority_id, const std::string& common_name);
  // Every CA directory's certificate, parsed again only when its file changed.
  void refresh_ca_index();

  std::filesystem::path pki_dir_;
  std::map<std::pair<std::string, std::string>, Entry> entries_;
  std::map<std::filesystem::path, CaCertificate> ca_index_;
  std::uint64_t loads_ = 0;
};

// A copy sharing the same OpenSSL objects (their reference counts go up).
PeerTrust share(const PeerTrust& trust);

}  // namespace recmesh::e2e
