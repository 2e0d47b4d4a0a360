#include "recmesh_cli.hpp"

namespace recmesh::testing {

std::string recmesh_binary() {
  return RECMESH_BINARY;
}

CommandResult run_recmesh(const std::vector<std::string>& args,
                          std::map<std::string, std::string> env) {
  std::vector<std::string> argv{recmesh_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  env.emplace("RECMESH_PKI_PASSPHRASE", kTestPassphrase);
  return run_command(argv, env);
}

}  // namespace recmesh::testing
