#include "recmesh/core/secret.hpp"

#include <cstdlib>
#include <sys/stat.h>

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"

namespace recmesh {

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)) {
  other.wipe();
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

Secret::~Secret() {
  wipe();
}

void Secret::wipe() {
  if (!value_.empty()) {
    OPENSSL_cleanse(value_.data(), value_.size());
  }
  value_.clear();
}

Secret read_secret_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(ErrorCode::kNotFound, fmt::format("cannot read passphrase file {}", path.string()));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw Error(ErrorCode::kPermissionDenied,
                fmt::format("passphrase file {} is readable by others (mode {:04o}); run chmod "
                            "600 on it",
                            path.string(), st.st_mode & 07777));
  }
  std::string text = read_file(path);
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  if (!text.empty() && text.back() == '\r') {
    text.pop_back();
  }
  if (text.empty()) {
    throw Error(ErrorCode::kPermissionDenied,
                fmt::format("passphrase file {} is empty", path.string()));
  }
  return Secret(std::move(text));
}

Secret secret_from_file_or_env(const std::filesystem::path& file, const char* env_name) {
  if (!file.empty()) {
    return read_secret_file(file);
  }
  const char* value = std::getenv(env_name);
  if (value == nullptr || *value == '\0') {
    throw Error(ErrorCode::kPermissionDenied,
                fmt::format("no passphrase: set {} or pass --passphrase-file", env_name));
  }
  return Secret(std::string(value));
}

}  // namespace recmesh
