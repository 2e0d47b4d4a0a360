#include "bench_command_line.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace recmesh::bench {

BenchCommandLine::BenchCommandLine(std::string program, std::string usage)
    : program_(std::move(program)), usage_(std::move(usage)) {}

BenchCommandLine& BenchCommandLine::on_quick(std::function<void()> set) {
  quick_ = std::move(set);
  return *this;
}

BenchCommandLine& BenchCommandLine::integer(std::string flag, int min, int max,
                                            std::function<void(int)> set) {
  integers_.push_back({std::move(flag), min, max, std::move(set)});
  return *this;
}

std::optional<int> BenchCommandLine::parse(int argc, char** argv) const {
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        fmt::print("{}", usage_);
        return 0;
      }
      if (arg == "--quick" && quick_) {
        quick_();
        continue;
      }
      const auto flag = std::find_if(integers_.begin(), integers_.end(),
                                     [&](const IntegerFlag& f) { return f.flag == arg; });
      if (flag == integers_.end()) {
        throw std::invalid_argument("unknown argument " + arg);
      }
      if (i + 1 >= argc) {
        throw std::invalid_argument(arg + " needs a value");
      }
      flag->set(std::clamp(std::stoi(argv[++i]), flag->min, flag->max));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n{}", program_, e.what(), usage_);
    return 2;
  }
  return std::nullopt;
}

int BenchCommandLine::run(const std::function<int()>& benchmark) const {
  spdlog::set_level(spdlog::level::err);
  try {
    return benchmark();
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program_, e.what());
    return 1;
  }
}

}  // namespace recmesh::bench
