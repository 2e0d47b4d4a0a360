#pragma once

#include <stdexcept>
#include <string>

#include "recmesh/core/error.hpp"

namespace recmesh::secmgr {

// An HTTP error: a status and a message safe to show the client. The internal cause of a 5xx
// goes to the log only.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

  static ApiError bad_request(const std::string& message) { return {400, message}; }
  static ApiError forbidden(const std::string& message) { return {403, message}; }
  static ApiError not_found(const std::string& message) { return {404, message}; }
  static ApiError conflict(const std::string& message) { return {409, message}; }

 private:
  int status_;
};

// The HTTP status an Error maps to (kInternal and kDataLoss: 500).
int http_status_of(ErrorCode code);

}  // namespace recmesh::secmgr
