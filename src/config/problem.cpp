#include "recmesh/config/problem.hpp"

#include <fmt/format.h>

namespace recmesh::config {

std::string to_string(const Problem& problem) {
  std::string out = problem.file;
  if (problem.line > 0) {
    out += fmt::format(":{}:{}", problem.line, problem.column);
  }
  out += ": ";
  if (!problem.key.empty()) {
    out += problem.key + ": ";
  }
  out += problem.message;
  return out;
}

std::string describe_problems(const std::vector<Problem>& problems) {
  const std::string file = problems.empty() ? std::string("(none)") : problems.front().file;
  std::string out = fmt::format("configuration {} has {} problem{}:", file, problems.size(),
                                problems.size() == 1 ? "" : "s");
  for (const Problem& problem : problems) {
    out += "\n  " + to_string(problem);
  }
  return out;
}

Error to_error(const std::vector<Problem>& problems) {
  return Error(ErrorCode::kInvalidArgument, describe_problems(problems));
}

void Validation::fail(std::string_view key, std::string message) {
  std::string path = prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  findings_->emplace_back(std::move(path), std::move(message));
}

Validation Validation::within(std::string_view block) const {
  return Validation(*findings_,
                    prefix_.empty() ? std::string(block) : prefix_ + "." + std::string(block));
}

}  // namespace recmesh::config
