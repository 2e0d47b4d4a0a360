#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace recmesh {

// What kind of failure an operation hit; callers map it to exit codes or HTTP statuses.
enum class ErrorCode {
  kInvalidArgument,     // the caller's input is malformed (IDs, SANs, flags)
  kAlreadyExists,       // a REC, member or identity that is already registered
  kNotFound,            // no such REC, member, CA or certificate
  kFailedPrecondition,  // the state forbids it (issuing under a revoked CA, missing PKI)
  kPermissionDenied,    // wrong passphrase, too-open key or passphrase file
  kDataLoss,            // a corrupt or truncated file in a store
  kInternal,            // a library call failed unexpectedly
  kUnavailable,         // a peer or resource could not be reached
};

std::string_view to_string(ErrorCode code);

// Start-up, configuration and PKI errors. The message is safe to show to a user: it never
// contains secrets.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace recmesh
