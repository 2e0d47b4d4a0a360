#pragma once

#include <string>
#include <string_view>

namespace recmesh::crypto {

// Drains OpenSSL's thread-local error queue into one line ("" when it is empty).
std::string drain_openssl_errors();

// Throws Error(kInternal) with `what` and the drained OpenSSL errors.
[[noreturn]] void throw_openssl_error(std::string_view what);

}  // namespace recmesh::crypto
