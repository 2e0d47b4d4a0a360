#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recmesh/core/error.hpp"

namespace recmesh::config {

// One thing wrong with a configuration, located as precisely as the file allows.
struct Problem {
  std::string file;
  int line = 0;     // 1-based; 0 when the problem has no place in the file (a missing key)
  int column = 0;   // 1-based; 0 with line 0
  std::string key;  // dotted key path ("tls.cafile"); empty for problems of the whole file
  std::string message;
};

// "file:line:column: key: message" (parts that are unknown are left out).
std::string to_string(const Problem& problem);

// All problems, one per line, under a line that names the file and counts them.
std::string describe_problems(const std::vector<Problem>& problems);

// The single exception a bad configuration raises: Error(kInvalidArgument) listing every problem.
Error to_error(const std::vector<Problem>& problems);

// Where validate() rules report cross-field problems. Keys are relative to the block the rule
// was declared on; the loader adds the block's prefix and the place in the file.
class Validation {
 public:
  using Findings = std::vector<std::pair<std::string, std::string>>;  // (key path, message)

  explicit Validation(Findings& findings, std::string prefix = {})
      : findings_(&findings), prefix_(std::move(prefix)) {}

  // `message` should say what is allowed, e.g. "must be shorter than session_expiry (1h)".
  void fail(std::string_view key, std::string message);

  // The same sink, for rules of a block nested under `block`.
  Validation within(std::string_view block) const;

 private:
  Findings* findings_;
  std::string prefix_;
};

}  // namespace recmesh::config
