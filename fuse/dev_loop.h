// DevLoop: serves a FUSE session's /dev/fuse descriptor with one leader
// thread that waits for requests, pinned to the CPU its requesters run on,
// and helpers that step in while the leader is held up.
//
// Why not libfuse's multi-threaded loop: its workers all wait in read(2)
// and the kernel hands each request to the one that has waited longest,
// wherever it last ran. On a small virtual machine, waking another CPU
// costs more than the whole request (docs/performance.md, "The mount
// write"): the requester sleeps on one CPU, the server wakes on the other,
// and the reply has to wake the requester's CPU again. Threads that wait
// in poll(2) are all woken for each request (a worker pinned to each CPU
// measured no better for that), so exactly one thread waits on the
// descriptor, the leader, and it runs on the requester's CPU: a request
// and its reply are then two switches on one CPU and wake nothing
// elsewhere. The leader learns where its requesters run from
// /proc/TID/stat (the CPU a task last ran on) on the first request after
// a pause and every kFollowEvery requests (a requester woken by a reply
// may be moved to an idle CPU), and moves itself there.
//
// Helpers wait on a condition variable, not on the descriptor. The
// thread in run() looks whether a request waits unread (the leader is held
// up: a long read, a handler waiting on the host's events) every 2 ms
// while requests come and every second after one without any, and then
// wakes a helper, starting one if none is idle, up to `max_threads`
// threads in all; a helper serves what it finds waiting and goes back to
// sleep. A request that arrives while the leader is busy waits for a
// helper 2 ms at most, or a second after a quiet spell.
//
// Reads are non-blocking (a helper must never wait on the descriptor), so
// the descriptor is put in non-blocking mode for the loop's lifetime and
// back when it ends. It may be shared with a keeper (fuse/connection.h):
// a server attaching to it clears the mode before its first read, so that
// a predecessor that died inside the loop leaves nothing behind.
//
// Thread-safety: run() is called by one thread, which must have SIGINT,
// SIGTERM, SIGHUP and SIGUSR1 unblocked and handlers installed that call
// fuse_session_exit; the leader and the helpers block every signal. They
// call fuse_session_process_buf concurrently, as libfuse's own loop does.
#pragma once

#include <semaphore.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

struct fuse_session;

namespace cgcore::fuse {

// Clears O_NONBLOCK on `fd` (a predecessor's DevLoop may have left it).
// Returns 0 or fcntl's errno.
int make_blocking(int fd);

class DevLoop {
 public:
  // `fd` is the session's /dev/fuse descriptor. Immutable after
  // construction: the session, the descriptor and the bound.
  DevLoop(fuse_session* se, int fd, int max_threads);
  ~DevLoop();
  DevLoop(const DevLoop&) = delete;
  DevLoop& operator=(const DevLoop&) = delete;

  // Serves until the session exits (a signal's handler, or the end of the
  // connection: an unmount or an abort), then stops the threads once each
  // has answered the request it holds; requests not read yet stay queued
  // in the kernel. Returns 0, or -errno if the descriptor failed or no
  // thread could be started.
  int run();

 private:
  // The leader checks where its requester runs every this many requests.
  static constexpr uint64_t kFollowEvery = 8;

  void leader_main();
  void helper_main();
  // One non-blocking read and, if it got a request, its handling. Returns
  // 1 if a request was served, 0 if none was waiting, -1 if the session
  // ended (the reason is recorded).
  int serve_one(void** mem, bool leader);
  // Moves the leader to the CPU the requester of the request in `mem` last
  // ran on, if it may run there.
  void follow(const void* mem);
  // The session ended from a server thread's side (connection gone, read
  // error).
  void end(int err);
  // run()'s look at each of its wake-ups: wakes a helper, starting one if
  // none is idle, if a request waits unread.
  void look_for_stalls();

  fuse_session* const se_;
  const int fd_;
  const int max_threads_;
  int stop_fd_ = -1;  // an eventfd: readable once the leader must stop

  sem_t finished_;              // posted when a thread ends the session
  std::atomic<int> error_{0};   // -errno of a failed read, or 0
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_{0};  // requests the leader took
  std::atomic<uint64_t> helped_{0};  // requests helpers took
  int leader_cpu_ = -1;          // the leader's own: where it is pinned
  int64_t last_request_ns_ = 0;  // ... when it last took a request

  std::mutex mu_;  // a leaf: helpers' hand-off
  std::condition_variable wake_helpers_;
  uint64_t calls_ = 0;    // guarded by mu_: wake-ups asked of the helpers
  int idle_helpers_ = 0;  // guarded by mu_
  std::vector<std::thread> helpers_;  // guarded by mu_ (joined by run())
  std::thread leader_;
};

}  // namespace cgcore::fuse
