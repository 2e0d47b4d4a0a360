#include "recmesh/e2e/trust_store.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/crypto/pem.hpp"

namespace recmesh::e2e {

namespace fs = std::filesystem;

FileStamp FileStamp::of(const fs::path& file) {
  FileStamp s;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return s;
  }
  s.device = st.st_dev;
  s.inode = st.st_ino;
  s.size = st.st_size;
  s.modified = st.st_mtim;
  s.changed = st.st_ctim;
  return s;
}

bool FileStamp::operator==(const FileStamp& o) const {
  return device == o.device && inode == o.inode && size == o.size &&
         modified.tv_sec == o.modified.tv_sec && modified.tv_nsec == o.modified.tv_nsec &&
         changed.tv_sec == o.changed.tv_sec && changed.tv_nsec == o.changed.tv_nsec;
}

PeerTrust share(const PeerTrust& trust) {
  PeerTrust copy;
  copy.common_name = trust.common_name;
  for (const auto& c : trust.issuer_chain) {
    if (X509_up_ref(c.get()) != 1) {
      throw Error(ErrorCode::kInternal, "X509_up_ref failed");
    }
    copy.issuer_chain.emplace_back(c.get());
  }
  for (const auto& crl : trust.crls) {
    if (X509_CRL_up_ref(crl.get()) != 1) {
      throw Error(ErrorCode::kInternal, "X509_CRL_up_ref failed");
    }
    copy.crls.emplace_back(crl.get());
  }
  return copy;
}

PeerTrust PeerTrust::from_pki_dir(const fs::path& pki_dir, const std::string& authority_id,
                                  std::string common_name) {
  PkiTrustStore store(pki_dir);
  return store.get(authority_id, std::move(common_name));
}

PkiTrustStore::PkiTrustStore(fs::path pki_dir) : pki_dir_(std::move(pki_dir)) {}

PeerTrust PkiTrustStore::get(const std::string& authority_id, std::string common_name) {
  auto key = std::make_pair(authority_id, std::move(common_name));
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    for (const auto& [file, stamp] : it->second.sources) {
      if (!(FileStamp::of(file) == stamp)) {
        entries_.erase(it);
        it = entries_.end();
        break;
      }
    }
  }
  if (it == entries_.end()) {
    Entry entry = load(key.first, key.second);
    it = entries_.emplace(std::move(key), std::move(entry)).first;
  }
  return share(it->second.trust);
}

void PkiTrustStore::refresh_ca_index() {
  std::map<fs::path, CaCertificate> index;
  for (const auto& entry : fs::directory_iterator(pki_dir_ / "ca")) {
    const auto cert_path = entry.path() / "cert.pem";
    const FileStamp stamp = FileStamp::of(cert_path);
    if (stamp.size < 0) {
      continue;
    }
    if (auto known = ca_index_.find(entry.path());
        known != ca_index_.end() && known->second.stamp == stamp) {
      index.emplace(entry.path(), std::move(known->second));
      continue;
    }
    index.emplace(entry.path(),
                  CaCertificate{stamp, crypto::certificate_from_pem(read_file(cert_path),
                                                                    cert_path.string())});
  }
  ca_index_ = std::move(index);
}

// Every CA of the chain is a directory under ca/ whose cert.pem is that certificate; the chain
// and each of those certificates and CRLs are the entry's sources.
PkiTrustStore::Entry PkiTrustStore::load(const std::string& authority_id,
                                         const std::string& common_name) {
  ++loads_;
  const auto ca_dir = pki_dir_ / "ca";
  const auto chain_path = ca_dir / authority_id / "chain.pem";
  Entry entry;
  const FileStamp chain_stamp = FileStamp::of(chain_path);
  const std::string chain = read_file(chain_path);
  entry.sources.emplace_back(chain_path, chain_stamp);
  const auto chain_certs = crypto::certificates_from_pem(chain, authority_id);
  refresh_ca_index();
  std::vector<std::string> crls;
  for (const auto& c : chain_certs) {
    for (const auto& [dir, ca] : ca_index_) {
      const auto crl_path = dir / "crl.pem";
      const FileStamp crl_stamp = FileStamp::of(crl_path);
      if (crl_stamp.size < 0 || X509_cmp(c.get(), ca.certificate.get()) != 0) {
        continue;
      }
      crls.push_back(read_file(crl_path));
      entry.sources.emplace_back(dir / "cert.pem", ca.stamp);
      entry.sources.emplace_back(crl_path, crl_stamp);
    }
  }
  if (crls.size() != chain_certs.size()) {
    throw Error(ErrorCode::kNotFound, fmt::format("{}: a CRL of the chain of {} is missing",
                                                  ca_dir.string(), authority_id));
  }
  entry.trust = PeerTrust::from_pem(chain, crls, common_name);
  return entry;
}

}  // namespace recmesh::e2e
