#pragma once

#include "recmesh/daemon/daemon_context.hpp"

#include "secmgr/secmgr_config.hpp"

namespace recmesh::secmgr {

// `recmesh secmgr`: opens the PKI and the registry, issues the manager's own certificates when
// they are missing, serves the API (and the RabbitMQ authorisation endpoint when enabled) and
// pushes policy to the registered brokers until stop is requested. Returns the exit code.
int run_secmgr(const SecmgrSettings& settings, daemon::DaemonContext& context);

}  // namespace recmesh::secmgr
