#include "cli/worker_process.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "core/error.h"

extern char** environ;

namespace wkvq::cli {

namespace {

// The running worker's pid for the signal handlers (0: none). Signal handlers can reach only
// static storage.
std::atomic<pid_t>& worker_pid() {
  static std::atomic<pid_t> pid{0};
  return pid;
}
std::atomic<int>& stop_signal() {
  static std::atomic<int> sig{0};
  return sig;
}

extern "C" void forward_signal(int sig) {
  stop_signal().store(sig);
  const pid_t pid = worker_pid().load();
  if (pid > 0) kill(pid, sig);
}

// SIGINT and SIGTERM forwarded to the worker while it runs; the previous handlers restored after.
// A signal this process ignores (as a shell's background job ignores SIGINT) stays ignored.
class ForwardSignals {
 public:
  ForwardSignals() {
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    for (auto [sig, old] : {std::pair{SIGINT, &old_int_}, std::pair{SIGTERM, &old_term_}}) {
      sigaction(sig, nullptr, old);
      if (old->sa_handler != SIG_IGN) sigaction(sig, &sa, nullptr);
    }
  }
  ~ForwardSignals() {
    worker_pid().store(0);
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  ForwardSignals(const ForwardSignals&) = delete;
  ForwardSignals& operator=(const ForwardSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace

RunDirLock::RunDirLock(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  WKVQ_REQUIRE(fd_ >= 0, path,
               ": cannot open the run directory's lock file: ", std::strerror(errno));
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {0};
    const ssize_t n = pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    WKVQ_REQUIRE(err != EWOULDBLOCK, run_dir, " is in use by another calibration run (pid ",
                 n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown"),
                 " holds ", path, "); wait for it to finish or stop it, or pass another --run-dir");
    fail(path, ": cannot lock the run directory: ", std::strerror(err));
  }
  const std::string pid = std::to_string(getpid());
  if (ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock (once the worker, too, has exited)
}

void run_worker(const std::vector<std::string>& args_in, const std::string& resume_hint) {
  std::vector<std::string> args = args_in;
  args.emplace_back("--parent-pid");
  args.push_back(std::to_string(getpid()));
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  stop_signal().store(0);
  const ForwardSignals forward;
  // fork + exec rather than posix_spawn: the death signal is set in the child before exec (it
  // survives exec), so the worker cannot outlive wkvq even while it is still loading libtorch.
  // Between fork and exec only async-signal-safe calls.
  const pid_t parent = getpid();
  const pid_t pid = fork();
  WKVQ_REQUIRE(pid >= 0, "cannot start ", args[0], ": ", std::strerror(errno));
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  worker_pid().store(pid);
  if (stop_signal().load() != 0) kill(pid, stop_signal().load());  // arrived before the store
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    WKVQ_REQUIRE(errno == EINTR, "waiting for ", args[0], " failed: ", std::strerror(errno));
  }
  if (const int sig = stop_signal().load(); sig != 0) {
    fail("interrupted by ", sig == SIGINT ? "SIGINT" : "SIGTERM",
         "; the calibration worker was stopped. ", resume_hint);
  }
  if (WIFSIGNALED(status)) {
    fail("the calibration worker was killed by signal ", WTERMSIG(status), ". ", resume_hint);
  }
  WKVQ_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "the calibration worker failed (exit status ", WEXITSTATUS(status),
               "); its message is above");
}

}  // namespace wkvq::cli
