#include "recmesh/daemon/daemon_context.hpp"

namespace recmesh::daemon {

DaemonContext::DaemonContext(std::string name, std::shared_ptr<log::LogOutput> output,
                             metrics::Registry& registry)
    : name_(std::move(name)), output_(std::move(output)), registry_(registry) {}

void DaemonContext::request_stop() {
  stop_.request_stop();
}

void DaemonContext::on_stop(std::function<void()> callback) {
  std::lock_guard lock(callbacks_mutex_);
  callbacks_.emplace_back(stop_.get_token(), std::move(callback));
}

void DaemonContext::wait_for_stop() const {
  std::unique_lock lock(wait_mutex_);
  wait_cv_.wait(lock, stop_.get_token(), [] { return false; });
}

bool DaemonContext::wait_for_stop(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(wait_mutex_);
  wait_cv_.wait_for(lock, stop_.get_token(), timeout, [] { return false; });
  return stop_.stop_requested();
}

}  // namespace recmesh::daemon
