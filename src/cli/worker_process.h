// The calibration worker as a child process: started with fork + exec, with PR_SET_PDEATHSIG
// (SIGKILL) set in the child before exec and the parent checked after it (and again by the worker,
// which is told this process's pid with --parent-pid), so it dies with wkvq however wkvq ends,
// kill -9 included, even while it is still starting; and stopped cleanly when wkvq gets
// SIGINT or SIGTERM (the signal is forwarded, the worker waited for, and wkvq fails with a message
// saying how to continue). A run directory is locked (flock on RUN_DIR/lock) for as long as a run
// uses it, so a second concurrent run on it is refused.
#pragma once

#include <string>
#include <vector>

namespace wkvq::cli {

// An exclusive lock of a calibration run directory, held until destroyed. The lock file's
// descriptor is inherited by the worker, so the lock lasts while either process lives. Throws
// wkvq::Error naming the holder's pid when another run holds it.
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

// Runs args[0] with args (plus --parent-pid of this process), waiting for it. Throws unless it
// exits with status 0; `resume_hint` ends the message of an interrupted run.
void run_worker(const std::vector<std::string>& args, const std::string& resume_hint);

}  // namespace wkvq::cli
