// The keeper: the process that owns a cgcorefs mount's FUSE connection and
// runs the server (the daemon proper) as its child, so that the mount
// outlives the server (docs/cgcorefs.md, "Restarts and upgrades").
//
// It mounts (FuseConnection), then loops doing only what cannot fail once
// the mount exists: it starts the server with the connection on descriptor
// 3 and a control socket on descriptor 4, restarts it when it dies, forwards
// SIGTERM / SIGINT (stop: the server ends, then the keeper unmounts), and
// on SIGHUP upgrades: the running server is asked to hand over (SIGUSR1: it
// answers the requests it has read and exits), and a server is started
// from the binary now at the keeper's path. Requests that arrive meanwhile
// wait in the kernel's queue. Nothing it does after the mount can end it
// but a signal it is told to stop by: a failed fork or socketpair is
// retried a second later.
//
// The control socket (SOCK_SEQPACKET) carries, keeper to server, one
// message first: 'I' followed by the connection's INIT request as recorded
// (nothing after 'I' for a fresh connection); server to keeper, 'I' + the
// INIT bytes once the first server has read them, and 'R' once a server
// serves.
//
// Thread-safety: run_keeper runs on the process's only thread, with
// SIGCHLD, SIGTERM, SIGINT and SIGHUP blocked (it takes them by signalfd).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fuse/connection.h"

namespace cgcore::fuse {

// The descriptors a server started by a keeper finds.
inline constexpr int kKeeperConnectionFd = 3;
inline constexpr int kKeeperControlFd = 4;
// A server's exit status after a signal (stop or hand-over); 0 means the
// connection ended (the file system was unmounted).
inline constexpr int kServerExitSignalled = 3;

struct KeeperOptions {
  std::string mountpoint;
  MountOptions mount;
  // The server's command line (argv[0] is the binary to execute, looked up
  // again at every start, so that an upgrade finds the new file).
  std::vector<std::string> server_argv;
  // Log lines (the keeper's own sink).
  std::function<void(const std::string&)> log;
  // Once the first server serves (true), or when it ended before that, or
  // the mount failed (false): the keeper's verdict for whoever started it.
  std::function<void(bool)> ready;
  // A server has ended, however it ended (called before it is reaped, so
  // that its pid cannot name another process yet): what it leaves behind
  // under its pid, such as its control socket after a SIGKILL, can go.
  std::function<void(pid_t)> server_ended;
};

// Mounts and keeps the connection until the file system is unmounted or the
// keeper is told to stop; returns the exit status (0 after an unmount or a
// stop, 1 if the mount failed or the first server never served).
int run_keeper(const KeeperOptions& options);

// For a server started by a keeper: receives the keeper's first message (the
// recorded INIT, possibly empty). Errors: EPROTO for a malformed message, a
// recv error's errno.
Result<std::string> keeper_receive_init(int control_fd);
// Sends 'I' + init / 'R' to the keeper. Errors: the send's errno.
Status keeper_send_init(int control_fd, const std::string& init);
Status keeper_send_ready(int control_fd);

}  // namespace cgcore::fuse
