// EventNotifier: the host side of cgroup.event_control. take() copies the
// writer's eventfd into the daemon (pidfd_getfd) and identifies its control
// file through /proc/TID/fd; sinks made from the eventfd signal it from a
// notifier thread.
//
// Why a thread: writing 1 to an eventfd blocks while its counter is at its
// largest value, and the file's flags are the writer's (a shared open file
// description: we may not make it non-blocking). A listener's owner could
// thus stall whoever signals it. So signal() only queues; the notifier
// writes when poll says the counter has room, and a timer signal (kGuardSignal,
// handler installed by the first sink) ends a write that blocks anyway
// after 50 ms — the signal is then dropped, as the kernel's eventfd_signal
// drops what a saturated counter cannot hold.
//
// Synchronization: the queue is guarded by Queue::mu (a leaf); signal()
// takes only that. The notifier thread is the only writer of the descriptors. The guard
// signal's handler does nothing; it is installed process-wide (an embedder
// must leave that signal alone).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "fs/backend.h"

namespace cgcore::host {

class EventNotifier {
 public:
  EventNotifier() = default;
  ~EventNotifier();  // delivers nothing more; joins the notifier
  EventNotifier(const EventNotifier&) = delete;
  EventNotifier& operator=(const EventNotifier&) = delete;

  // Takes eventfd `efd` of thread `tid` (blocked in its write: its id
  // cannot be reused meanwhile) and identifies its descriptor `cfd`. EBADF if one is not open there,
  // EINVAL if `efd` is no eventfd, EPERM (or the kernel's errno) if the
  // daemon may not take them; ENOMEM if the notifier cannot start. The
  // control file is identified without a request to any FUSE server (its
  // cached attributes), since it may be one of our own.
  Result<fs::Backend::EventFds> take(Pid tid, int efd, int cfd);

 private:
  class Sink;
  struct Fd;
  struct Job {
    std::shared_ptr<Fd> fd;
    bool close_only = false;
  };
  // What sinks share with the notifier; a sink may outlive this object (it
  // lives in the engine's controller), and then signals nothing.
  struct Queue {
    // A std::mutex, for the condition variable: a leaf, held only around
    // the queue and the flag.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> fds;   // guarded by mu
    bool stopping = false;  // guarded by mu
    // Queues a signal of `fd`, or with `close_only` only its last reference
    // (its close happens in the notifier thread).
    void post(std::shared_ptr<Fd> fd, bool close_only = false);
  };
  // Starts the notifier if it is not running. Locking: start_mu_ held.
  Status start_locked();
  static void run(std::shared_ptr<Queue> q);

  const std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  std::mutex start_mu_;
  std::thread thread_;  // started once under start_mu_; joined by ~EventNotifier
};

}  // namespace cgcore::host
