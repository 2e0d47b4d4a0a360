#include "recmesh/core/error.hpp"

namespace recmesh {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kDataLoss:
      return "data loss";
    case ErrorCode::kInternal:
      return "internal error";
    case ErrorCode::kUnavailable:
      return "unavailable";
  }
  return "unknown error";
}

}  // namespace recmesh
