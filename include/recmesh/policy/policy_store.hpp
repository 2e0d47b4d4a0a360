#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "recmesh/core/result.hpp"
#include "recmesh/core/secret.hpp"

namespace recmesh::policy {

// The bundle in force, kept on disk as it arrived (signed) and encrypted with AES-256-GCM under
// a key file, so that a restart keeps it and nobody reads or edits it as text (SPEC §6).
// File: "RMGUARD1" | 12-byte nonce | ciphertext | 16-byte tag; the magic is the associated data.
// A loaded bundle is verified again like a pushed one; the file adds secrecy and integrity.
class PolicyStore {
 public:
  // The key file holds 64 hex digits (32 bytes) and must be readable by its owner only.
  // Throws Error(kPermissionDenied) for a too-open file, kInvalidArgument for a bad key.
  PolicyStore(std::filesystem::path path, const std::filesystem::path& key_file);

  // Atomically replaces the file (0600). Throws Error on I/O failure.
  void save(std::string_view signed_bundle) const;
  // Nothing when there is no file yet; kDataLoss for a file that is truncated, tampered with or
  // encrypted under another key.
  Result<std::optional<std::string>> load() const;

  const std::filesystem::path& path() const { return path_; }

  // A fresh key in the key file's format, for `recmesh broker-config`.
  static std::string generate_key();

 private:
  std::filesystem::path path_;
  Secret key_;  // 32 raw bytes
};

}  // namespace recmesh::policy
