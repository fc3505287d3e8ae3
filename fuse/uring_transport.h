// The transport between the kernel's FUSE and the request handlers:
// /dev/fuse reads and writes (fuse/dev_loop.h), or FUSE over io_uring
// (Linux 6.14+, when /sys/module/fuse/parameters/enable_uring is Y).
//
// Debian 12's libfuse (3.14) knows nothing of the ring, so UringTransport
// sits beneath it as libfuse's custom I/O (fuse_session_custom_io):
//
//   * read: every request read from /dev/fuse passes through it; from the
//     INIT request it learns whether the kernel offers the ring.
//   * writev: the INIT reply gets FUSE_OVER_IO_URING set (the queues are
//     prepared first, so that a kernel that then waits for them is never
//     left waiting); a reply whose unique belongs to a ring entry is copied
//     into that entry instead of being written; everything else
//     (notifications, replies to /dev/fuse requests) goes to /dev/fuse.
//
// The ring: one queue per possible CPU (the kernel picks the queue of the
// CPU the requesting thread runs on, and uses the ring only once every
// queue has an entry), `threads_per_queue` threads per queue, each pinned
// to its queue's CPU, with its own io_uring and one entry. A thread takes
// a request from its entry's completion, rebuilds the /dev/fuse form of
// it, hands it to libfuse's
// dispatcher (fuse_session_process_buf, i.e. the same handlers), and
// commits the reply with the fetch of the next request in one submission.
// FORGET and INTERRUPT still come on /dev/fuse, which libfuse's loop keeps
// serving, and the daemon's notifications (poll wake-ups) still go there.
//
// Thread-safety: the hooks are called from any libfuse worker and from the
// ring threads concurrently; start/stop from the thread that runs the
// session.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/locking.h"
#include "core/result.h"

struct fuse_session;

namespace cgcore::fuse {

enum class Transport {
  kAuto,  // the ring where the kernel offers it and registration works
  kUring, // the ring, or fail saying why
  kDev,   // /dev/fuse reads and writes only
};

// "auto", "uring", "dev"; nullopt for anything else.
std::optional<Transport> parse_transport(std::string_view s);
const char* transport_name(Transport t);

// Why this host cannot carry FUSE requests over io_uring ("" if it can, as
// far as can be told before mounting): the fuse module has no enable_uring
// parameter (kernel older than 6.14 or built without
// CONFIG_FUSE_IO_URING), the parameter is N, or io_uring rings cannot be
// created (kernel.io_uring_disabled, seccomp, ENOSYS).
std::string uring_unavailable();

struct UringOptions {
  // --transport=uring: a ring that cannot be set up ends the session
  // (through `abort_session`) instead of falling back to /dev/fuse.
  bool required = false;
  int threads_per_queue = 2;
  // Where the transport says what it did (ring up, fallback and why).
  std::function<void(const std::string&)> log;
  // Ends the session loop from any thread (required mode's failures).
  std::function<void()> abort_session;
};

class UringTransport {
 public:
  UringTransport(fuse_session* se, int dev_fd, UringOptions options);
  // stop()s.
  ~UringTransport();
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // libfuse's custom read and writev (fuse_custom_io), with /dev/fuse's
  // return conventions: -1 and errno on failure (read(2)'s and writev(2)'s
  // errors; writev also EINVAL for a ring reply larger than the entry's
  // payload buffer). The INIT reply's writev prepares the ring first and
  // waits until every queue registered or one failed. Locking: takes
  // pending_mu_ and state_mu_ briefly; the caller holds nothing.
  ssize_t read(int fd, void* buf, size_t len);
  ssize_t writev(int fd, const struct iovec* iov, int count);

  // Ends the ring threads (each notices within 100 ms, after the request in
  // hand) and closes their rings, which cancels their entries in the
  // kernel. Idempotent; cannot fail. Call before unmounting or destroying
  // the session, from the thread that ran it, once libfuse's loop is over.
  void stop();

  // Whether the ring carried requests (every queue registered), also after
  // stop().
  bool ring_active() const { return ring_active_.load(); }
  // What made the required ring fail ("" if nothing did). Takes state_mu_.
  std::string failure() const;
  // Requests served through the ring / read from /dev/fuse so far.
  uint64_t ring_requests() const { return ring_requests_.load(std::memory_order_relaxed); }
  uint64_t dev_requests() const { return dev_requests_.load(std::memory_order_relaxed); }
  // "io_uring (Q queues x T threads)" or "/dev/fuse (why)". Takes
  // state_mu_.
  std::string describe() const;

 private:
  struct Entry;
  struct QueueThread;

  // Before the INIT reply goes out: rings, buffers and threads for every
  // queue (payload buffers of `payload_size`, rounded up to pages). False,
  // with the reason given to fail(), if io_uring_setup, mmap or a thread
  // start failed; nothing is left set up then.
  bool prepare(size_t payload_size);
  // After the reply went out (ok) or failed (!ok): let the threads
  // register and wait for their verdicts, or end them.
  void release_threads(bool ok);
  // A ring thread: registers its entry, then serves one request at a time
  // until stop(), the connection's end, or a second refused command.
  void thread_main(QueueThread* t);
  // A request the kernel put in `e`: dispatches it through libfuse, waits
  // for its reply and lays that out for the commit (an EIO reply for a
  // malformed request). Takes pending_mu_ around the map updates.
  void serve(Entry& e);
  // Records why the ring is not used and says so; ends the session when
  // the ring is required. Takes state_mu_.
  void fail(const std::string& why);

  fuse_session* const se_;
  const int dev_fd_;
  const UringOptions options_;

  // INIT, as read from /dev/fuse.
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> init_offers_ring_{false};
  std::atomic<bool> init_seen_{false};

  std::vector<std::unique_ptr<QueueThread>> threads_;  // set up by prepare()
  std::atomic<int> go_{0};        // 0 wait, 1 register, -1 exit
  std::atomic<bool> stopping_{false};
  std::atomic<int> registered_{0};
  std::atomic<int> nr_queues_{0};
  std::atomic<bool> ring_active_{false};
  std::atomic<uint64_t> ring_requests_{0}, dev_requests_{0};

  // Ring entries waiting for libfuse's reply, by the request's unique.
  Mutex pending_mu_;
  std::unordered_map<uint64_t, Entry*> pending_ CG_GUARDED_BY(pending_mu_);

  mutable Mutex state_mu_;
  std::string failure_ CG_GUARDED_BY(state_mu_);
  std::string fallback_why_ CG_GUARDED_BY(state_mu_);
};

}  // namespace cgcore::fuse
