#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace recmesh {

// A passphrase or key held in memory: wiped on destruction, never formatted or logged.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  ~Secret();

  bool empty() const { return value_.empty(); }
  std::size_t size() const { return value_.size(); }
  // Deliberately verbose: every use of the plaintext is visible in review.
  std::string_view reveal() const { return value_; }

 private:
  void wipe();
  std::string value_;
};

// Reads a passphrase from a file that only its owner can read; one trailing newline is dropped.
Secret read_secret_file(const std::filesystem::path& path);

// Passphrase from `file` if given, else from the environment variable `env_name`.
// Throws Error(kPermissionDenied) when neither yields one.
Secret secret_from_file_or_env(const std::filesystem::path& file, const char* env_name);

}  // namespace recmesh
