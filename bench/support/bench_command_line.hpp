#pragma once

// The command line every communication benchmark takes: `--quick`, `-h`/`--help` and named
// integer flags, with one usage text and one way to report a bad argument or a failed run.

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace recmesh::bench {

class BenchCommandLine {
 public:
  // `program` prefixes every error ("recmesh-bench-<name>"); `usage` is printed by --help and
  // after a bad argument.
  BenchCommandLine(std::string program, std::string usage);

  // What --quick sets.
  BenchCommandLine& on_quick(std::function<void()> set);
  // A flag with an integer value, clamped to [min, max] before `set` sees it.
  BenchCommandLine& integer(std::string flag, int min, int max, std::function<void(int)> set);

  // Applies the arguments in order. Nothing when the benchmark should run; otherwise the exit
  // code: 0 after --help, 2 after a bad argument (reported on stderr with the usage).
  std::optional<int> parse(int argc, char** argv) const;

  // Runs the benchmark with library logging at error level: its exit code, or 1 with the
  // exception's message on stderr.
  int run(const std::function<int()>& benchmark) const;

 private:
  struct IntegerFlag {
    std::string flag;
    int min = 0;
    int max = 0;
    std::function<void(int)> set;
  };

  std::string program_;
  std::string usage_;
  std::function<void()> quick_;
  std::vector<IntegerFlag> integers_;
};

}  // namespace recmesh::bench
