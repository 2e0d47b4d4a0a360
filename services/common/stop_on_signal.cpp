#include "common/stop_on_signal.hpp"

#include <csignal>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "recmesh/core/error.hpp"

namespace recmesh::services {

StopOnSignal::StopOnSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) {
    throw Error(ErrorCode::kInternal, "cannot block SIGTERM and SIGINT");
  }
  fd_ = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    throw Error(ErrorCode::kInternal, "cannot open a signalfd");
  }
}

StopOnSignal::~StopOnSignal() {
  ::close(fd_);
}

void StopOnSignal::run(mqtt::EventLoop& loop, std::string_view what,
                       const std::function<void()>& start,
                       const std::function<void(std::function<void()>)>& stop) const {
  bool stopping = false;
  auto watched = loop.watch(fd_, true, false, [&](mqtt::FdEvents) {
    signalfd_siginfo info{};
    while (::read(fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      if (!stopping) {
        stopping = true;
        spdlog::info("signal {}: stopping {}", info.ssi_signo, what);
        stop([&loop] { loop.stop(); });
      }
    }
  });
  if (!watched) {
    throw Error(ErrorCode::kInternal, watched.status().message);
  }
  start();
  loop.run();
  loop.unwatch(fd_);
}

}  // namespace recmesh::services
