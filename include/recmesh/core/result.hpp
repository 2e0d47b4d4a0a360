#pragma once

#include <cassert>
#include <concepts>
#include <string>
#include <utility>
#include <variant>

#include "recmesh/core/error.hpp"

namespace recmesh {

// Why an operation on the data plane failed: a code callers branch on and a message that is
// safe to log (it never holds secrets or unbounded untrusted bytes).
struct Status {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// A value or an error, for paths that must not throw (message decoding, event loops). The error
// is a Status unless a layer has its own failure classes (e2e::Rejection).
template <typename T, typename E = Status>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  static Result failure(ErrorCode code, std::string message) requires std::same_as<E, Status> {
    return Result(Status{code, std::move(message)});
  }

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  const E& error() const {
    assert(!ok());
    return std::get<1>(state_);
  }
  const Status& status() const requires std::same_as<E, Status> { return error(); }

 private:
  std::variant<T, E> state_;
};

}  // namespace recmesh
