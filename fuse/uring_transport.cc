#define FUSE_USE_VERSION 314
#include "fuse/uring_transport.h"

#include <fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "controllers/cpuset.h"
#include "core/parse.h"

namespace cgcore::fuse {

namespace {

// What the kernel's FUSE uapi (protocol 7.42 on) adds for the ring, which
// Debian 12's <linux/fuse.h> (7.38) predates. Names follow the uapi.
constexpr uint64_t kFuseOverIoUring = 1ULL << 41;  // FUSE_OVER_IO_URING (init flags2 bit 9)
constexpr uint32_t kCmdRegister = 1;               // FUSE_IO_URING_CMD_REGISTER
constexpr uint32_t kCmdCommitAndFetch = 2;         // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
constexpr size_t kInOutArea = 128;                 // FUSE_URING_IN_OUT_HEADER_SZ
constexpr size_t kOpArea = 128;                    // FUSE_URING_OP_IN_OUT_SZ
constexpr uint32_t kMinReadBuffer = 8192;          // FUSE_MIN_READ_BUFFER
constexpr uint32_t kDefaultMaxPages = 32;          // FUSE_DEFAULT_MAX_PAGES_PER_REQ

// struct fuse_uring_ent_in_out: filled by the kernel with a request, by
// the server with its reply.
struct RingEntInOut {
  uint64_t flags;
  uint64_t commit_id;   // what the commit names the request by
  uint32_t payload_sz;  // bytes used in the payload buffer
  uint32_t padding;
  uint64_t reserved;
};

// struct fuse_uring_req_header: an entry's header buffer (iov[0] of
// REGISTER).
struct RingReqHeader {
  unsigned char in_out[kInOutArea];  // fuse_in_header / fuse_out_header
  unsigned char op_in[kOpArea];      // the opcode's own header, if any
  RingEntInOut ent;
};

// struct fuse_uring_cmd_req: the SQE's command area.
struct RingCmdReq {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

static_assert(sizeof(RingEntInOut) == 32);
static_assert(sizeof(RingReqHeader) == 288);
static_assert(sizeof(RingCmdReq) == 24);

constexpr const char* kEnableUring = "/sys/module/fuse/parameters/enable_uring";

std::optional<std::string> read_text(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The CPUs the kernel may ever run on: its ring has one queue per id.
// Empty if the list cannot be read.
std::vector<uint16_t> possible_cpus() {
  std::vector<uint16_t> out;
  std::optional<std::string> text = read_text("/sys/devices/system/cpu/possible");
  if (!text) return out;
  Result<CpuSet> set = CpuSet::parse(*text, 1u << 16);
  if (!set.ok()) return out;
  for (uint32_t id = 0; id < set->end(); ++id)
    if (set->test(id)) out.push_back(static_cast<uint16_t>(id));
  return out;
}

// The thread whose ring entry the running handler's request came from, so
// that its reply (normally written from the same thread) skips the lookup.
thread_local void* t_serving = nullptr;

}  // namespace

std::optional<Transport> parse_transport(std::string_view s) {
  if (s == "auto") return Transport::kAuto;
  if (s == "uring") return Transport::kUring;
  if (s == "dev") return Transport::kDev;
  return std::nullopt;
}

const char* transport_name(Transport t) {
  switch (t) {
    case Transport::kAuto: return "auto";
    case Transport::kUring: return "uring";
    case Transport::kDev: return "dev";
  }
  return "?";
}

std::string uring_unavailable() {
  std::optional<std::string> v = read_text(kEnableUring);
  if (!v)
    return std::string(kEnableUring) +
           " is missing: this kernel's FUSE has no io_uring transport (Linux 6.14+ built with "
           "CONFIG_FUSE_IO_URING)";
  if (strstrip(*v) != "Y")
    return std::string(kEnableUring) + " is " + std::string(strstrip(*v)) +
           "; as root: echo Y > " + kEnableUring;
  io_uring ring;
  io_uring_params p{};
  p.flags = IORING_SETUP_SQE128;
  if (int rc = io_uring_queue_init_params(1, &ring, &p); rc < 0)
    return std::string("io_uring_setup: ") + std::strerror(-rc) +
           (rc == -EPERM ? " (sysctl kernel.io_uring_disabled?)" : "");
  io_uring_queue_exit(&ring);
  if (possible_cpus().empty()) return "/sys/devices/system/cpu/possible is unreadable";
  return "";
}

// ------------------------------------------------------------ entries

// One ring entry: the buffers registered with the kernel, and the reply
// libfuse wrote for the request in hand.
struct UringTransport::Entry {
  RingReqHeader* header = nullptr;  // page-aligned, one page
  unsigned char* payload = nullptr;
  size_t payload_size = 0;
  std::unique_ptr<unsigned char[]> wire;  // the request in /dev/fuse form
  iovec iov[2]{};                   // REGISTER reads it from user memory
  uint64_t unique = 0;
  // The reply's payload length, set (with the out header in in_out) by
  // writev before `replied` is released.
  size_t reply_len = 0;
  std::atomic<bool> replied{false};
};

struct UringTransport::QueueThread {
  uint16_t qid = 0;
  io_uring ring{};
  bool ring_ok = false;
  bool disabled = false;  // enabled by the thread that will submit
  Entry entry;
  std::thread thread;

  ~QueueThread() {
    if (entry.header) munmap(entry.header, 4096);
    if (entry.payload) munmap(entry.payload, entry.payload_size);
    if (ring_ok) io_uring_queue_exit(&ring);
  }
};

UringTransport::UringTransport(fuse_session* se, int dev_fd, UringOptions options)
    : se_(se), dev_fd_(dev_fd), options_(std::move(options)) {}

UringTransport::~UringTransport() { stop(); }

std::string UringTransport::failure() const {
  MutexLock lock(state_mu_);
  return failure_;
}

std::string UringTransport::describe() const {
  // A request in the ring's hands counts before ring_active_ is set: the
  // kernel uses the ring as soon as the last queue registered.
  if (ring_active_.load() || ring_requests() > 0)
    return "io_uring (" + std::to_string(nr_queues_.load()) + " queues x " +
           std::to_string(options_.threads_per_queue) + " threads)";
  MutexLock lock(state_mu_);
  return "/dev/fuse" + (fallback_why_.empty() ? std::string() : " (" + fallback_why_ + ")");
}

void UringTransport::fail(const std::string& why) {
  {
    MutexLock lock(state_mu_);
    if (options_.required) {
      if (failure_.empty()) failure_ = why;
    } else if (fallback_why_.empty()) {
      fallback_why_ = why;
    }
  }
  if (options_.log)
    options_.log(options_.required ? "--transport=uring: " + why
                                   : "io_uring transport unavailable, serving through /dev/fuse: " + why);
  if (options_.required && options_.abort_session) options_.abort_session();
}

// ------------------------------------------------------------ libfuse hooks

ssize_t UringTransport::read(int fd, void* buf, size_t len) {
  ssize_t n = ::read(fd, buf, len);
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return n;
  dev_requests_.fetch_add(1, std::memory_order_relaxed);
  if (init_seen_.load(std::memory_order_relaxed)) return n;
  const auto* in = static_cast<const fuse_in_header*>(buf);
  if (in->opcode == FUSE_INIT &&
      static_cast<size_t>(n) >= sizeof(fuse_in_header) + offsetof(fuse_init_in, flags2) + sizeof(uint32_t)) {
    fuse_init_in arg;
    std::memcpy(&arg, static_cast<const char*>(buf) + sizeof(fuse_in_header),
                std::min(sizeof arg, static_cast<size_t>(n) - sizeof(fuse_in_header)));
    uint64_t flags = arg.flags;
    if (flags & FUSE_INIT_EXT) flags |= static_cast<uint64_t>(arg.flags2) << 32;
    init_offers_ring_.store((flags & kFuseOverIoUring) != 0);
    init_unique_.store(in->unique);
    init_seen_.store(true);
  }
  return n;
}

ssize_t UringTransport::writev(int fd, const struct iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  const auto* oh = static_cast<const fuse_out_header*>(iov[0].iov_base);
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;

  // A reply to a ring request: into its entry, committed by its thread.
  // (Before ring_active_ is set too: the kernel may use the ring as soon as
  // the last queue registered.)
  if (oh->unique != 0 && go_.load(std::memory_order_acquire) == 1) {
    Entry* e = nullptr;
    if (auto* mine = static_cast<Entry*>(t_serving); mine && mine->unique == oh->unique) {
      e = mine;
    } else {
      MutexLock lock(pending_mu_);
      if (auto it = pending_.find(oh->unique); it != pending_.end()) e = it->second;
    }
    if (e) {
      if (total - sizeof(fuse_out_header) > e->payload_size) {
        errno = EINVAL;
        return -1;
      }
      std::memcpy(e->header->in_out, oh, sizeof(fuse_out_header));
      size_t at = 0;
      size_t skip = sizeof(fuse_out_header);
      for (int i = 0; i < count; ++i) {
        const auto* p = static_cast<const unsigned char*>(iov[i].iov_base);
        size_t l = iov[i].iov_len;
        const size_t s = std::min(skip, l);
        p += s;
        l -= s;
        skip -= s;
        std::memcpy(e->payload + at, p, l);
        at += l;
      }
      e->reply_len = at;
      e->replied.store(true, std::memory_order_release);
      e->replied.notify_one();
      return static_cast<ssize_t>(total);
    }
  }

  // The INIT reply: ask for the ring if the kernel offered it.
  const uint64_t init_unique = init_unique_.load();
  if (init_unique != 0 && oh->unique == init_unique) {
    init_unique_.store(0);
    std::vector<unsigned char> msg(total);
    size_t at = 0;
    for (int i = 0; i < count; ++i) {
      std::memcpy(msg.data() + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
    const size_t need = sizeof(fuse_out_header) + offsetof(fuse_init_out, flags2) + sizeof(uint32_t);
    bool asked = false;
    if (oh->error != 0 || total < need) {
      fail("libfuse refused INIT or sent a short reply");
    } else if (!init_offers_ring_.load()) {
      fail("the kernel did not offer FUSE_OVER_IO_URING in INIT");
    } else {
      fuse_init_out out;
      std::memset(&out, 0, sizeof out);
      std::memcpy(&out, msg.data() + sizeof(fuse_out_header),
                  std::min(sizeof out, total - sizeof(fuse_out_header)));
      // The kernel's largest payload for this connection (its ring
      // refuses smaller buffers).
      uint64_t flags = out.flags | (static_cast<uint64_t>(out.flags2) << 32);
      const uint32_t pages = (flags & FUSE_MAX_PAGES) ? std::max<uint32_t>(out.max_pages, 1) : kDefaultMaxPages;
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      const size_t payload = std::max<size_t>({kMinReadBuffer, out.max_write, pages * page});
      if (prepare(payload)) {
        flags |= kFuseOverIoUring | FUSE_INIT_EXT;
        out.flags = static_cast<uint32_t>(flags);
        out.flags2 = static_cast<uint32_t>(flags >> 32);
        std::memcpy(msg.data() + sizeof(fuse_out_header), &out,
                    std::min(sizeof out, total - sizeof(fuse_out_header)));
        asked = true;
      }
    }
    ssize_t n = ::write(fd, msg.data(), msg.size());
    // The kernel has taken the reply (and is initialized) once write
    // returns: registration may start.
    if (asked) release_threads(n == static_cast<ssize_t>(msg.size()));
    return n;
  }
  return ::writev(fd, iov, count);
}

// ------------------------------------------------------------ the ring

bool UringTransport::prepare(size_t payload_size) {
  std::vector<uint16_t> cpus = possible_cpus();
  if (cpus.empty()) {
    fail("/sys/devices/system/cpu/possible is unreadable");
    return false;
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  payload_size = (payload_size + page - 1) / page * page;
  nr_queues_.store(static_cast<int>(cpus.size()));
  for (uint16_t qid : cpus) {
    for (int k = 0; k < std::max(1, options_.threads_per_queue); ++k) {
      auto t = std::make_unique<QueueThread>();
      t->qid = qid;
      // Completions run as task work in the ring's own thread, only when
      // it waits (DEFER_TASKRUN): no interrupting the thread mid-request.
      // Such a ring takes submissions from one thread, fixed when it is
      // enabled, so it starts disabled and its thread enables it. Kernels
      // before 6.1 get a plain ring.
      io_uring_params p{};
      p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                IORING_SETUP_R_DISABLED;
      int rc = io_uring_queue_init_params(4, &t->ring, &p);
      if (rc == -EINVAL) {
        p = {};
        p.flags = IORING_SETUP_SQE128;
        rc = io_uring_queue_init_params(4, &t->ring, &p);
      }
      t->disabled = rc == 0 && (p.flags & IORING_SETUP_R_DISABLED);
      if (rc < 0) {
        fail(std::string("io_uring_setup: ") + std::strerror(-rc));
        threads_.clear();
        return false;
      }
      t->ring_ok = true;
      Entry& e = t->entry;
      void* h = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      void* b = mmap(nullptr, payload_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (h != MAP_FAILED) e.header = static_cast<RingReqHeader*>(h);
      if (b != MAP_FAILED) {
        e.payload = static_cast<unsigned char*>(b);
        e.payload_size = payload_size;
      }
      if (!e.header || !e.payload) {
        fail("cannot map the ring's buffers");
        threads_.clear();
        return false;
      }
      // Not zeroed: its pages stay unbacked until a request needs them.
      e.wire.reset(new unsigned char[sizeof(fuse_in_header) + kOpArea + payload_size]);
      e.iov[0] = {e.header, sizeof(RingReqHeader)};
      e.iov[1] = {e.payload, payload_size};
      threads_.push_back(std::move(t));
    }
  }
  // The threads exist before the reply promises the ring: a kernel told
  // FUSE_OVER_IO_URING holds requests back until every queue registered.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (auto& t : threads_) {
    QueueThread* raw = t.get();
    try {
      t->thread = std::thread([this, raw] { thread_main(raw); });
    } catch (const std::system_error& err) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      fail(std::string("cannot start the ring threads: ") + err.what());
      release_threads(false);
      return false;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return true;
}

void UringTransport::release_threads(bool ok) {
  go_.store(ok ? 1 : -1);
  go_.notify_all();
  if (!ok) {
    for (auto& t : threads_)
      if (t->thread.joinable()) t->thread.join();
    threads_.clear();
    return;
  }
  // Registration fails at submission or not at all: each thread says how
  // it went before the first request can arrive.
  const int want = static_cast<int>(threads_.size());
  for (;;) {
    const int r = registered_.load();
    if (r < 0 || r == want) break;
    registered_.wait(r);
  }
  if (registered_.load() == want) {
    ring_active_.store(true, std::memory_order_release);
    if (options_.log) options_.log("transport " + describe());
  }
}

void UringTransport::thread_main(QueueThread* t) {
  for (int g = go_.load(); g == 0; g = go_.load()) go_.wait(0);
  if (go_.load() < 0) return;
  // Pinned to its queue's CPU, which is the requester's: the request and
  // its reply then wake nothing on another CPU, whose wake-up costs more
  // than the request on a small virtual machine (docs/performance.md, "The
  // mount write"). A CPU the server may not use leaves the thread where it
  // is.
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(t->qid, &set);
  (void)sched_setaffinity(0, sizeof set, &set);
  if (t->disabled) {
    // io_uring_enable_rings is declared by liburing 2.3 but not exported.
    if (syscall(__NR_io_uring_register, t->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) != 0) {
      const int err = errno;
      if (registered_.exchange(-1) >= 0) fail(std::string("enabling a ring: ") + std::strerror(err));
      registered_.notify_all();
      return;
    }
  }
  Entry& e = t->entry;
  auto submit_cmd = [&](uint32_t op, uint64_t commit_id) -> io_uring_sqe* {
    io_uring_sqe* sqe = io_uring_get_sqe(&t->ring);
    if (!sqe) return nullptr;
    std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // an SQE128
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = dev_fd_;
    sqe->cmd_op = op;
    sqe->user_data = reinterpret_cast<uint64_t>(&e);
    RingCmdReq req{};
    req.qid = t->qid;
    req.commit_id = commit_id;
    std::memcpy(sqe->cmd, &req, sizeof req);
    return sqe;
  };

  io_uring_sqe* sqe = submit_cmd(kCmdRegister, 0);
  sqe->addr = reinterpret_cast<uint64_t>(e.iov);
  sqe->len = 2;
  int rc = io_uring_submit(&t->ring);
  io_uring_cqe* cqe = nullptr;
  if (rc == 1 && io_uring_peek_cqe(&t->ring, &cqe) == 0 && cqe->res < 0) rc = cqe->res;
  if (rc != 1) {
    if (registered_.exchange(-1) >= 0)
      fail("registering queue " + std::to_string(t->qid) + ": " + std::strerror(rc < 0 ? -rc : EIO));
    registered_.notify_all();
    return;
  }
  for (int r = registered_.load(); r >= 0 && !registered_.compare_exchange_weak(r, r + 1);) {
  }
  registered_.notify_all();

  // One entry, one request at a time: the commit of a reply and the fetch
  // of the next request go in one io_uring_enter.
  bool pending_submit = false;
  int failures = 0;  // in a row: a second one ends the thread
  for (;;) {
    __kernel_timespec ts{0, 100 * 1000 * 1000};
    cqe = nullptr;
    rc = pending_submit ? io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, nullptr)
                        : io_uring_wait_cqe_timeout(&t->ring, &cqe, &ts);
    pending_submit = io_uring_sq_ready(&t->ring) > 0;
    if (stopping_.load()) return;
    if (rc == -ETIME || rc == -EINTR || (rc >= 0 && !cqe)) continue;
    if (rc < 0) return;
    const int res = cqe->res;
    io_uring_cqe_seen(&t->ring, cqe);
    if (res < 0) {
      // The connection ended (unmount, abort) or the ring was cancelled.
      if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED || res == -ENODEV ||
          ++failures > 1)
        return;
      // A commit the kernel refused (its request was gone, -ENOENT): the
      // kernel keeps that entry, so register the buffers again as a new
      // one, or this queue would lose a server.
      if (options_.log)
        options_.log("io_uring queue " + std::to_string(t->qid) + ": " + std::strerror(-res) +
                     "; registering its entry again");
      io_uring_sqe* again = submit_cmd(kCmdRegister, 0);
      again->addr = reinterpret_cast<uint64_t>(e.iov);
      again->len = 2;
      pending_submit = true;
      continue;
    }
    failures = 0;
    serve(e);
    const uint64_t commit_id = e.header->ent.commit_id;
    submit_cmd(kCmdCommitAndFetch, commit_id);
    pending_submit = true;
  }
}

void UringTransport::serve(Entry& e) {
  fuse_in_header in;
  std::memcpy(&in, e.header->in_out, sizeof in);
  const uint32_t payload = e.header->ent.payload_sz;
  const size_t head = sizeof(fuse_in_header);
  // fuse_in_header.len covers the op header too, whose size the ring
  // leaves implicit: whatever len holds beyond the payload.
  if (in.len < head + payload || in.len - head - payload > kOpArea || payload > e.payload_size) {
    fuse_out_header out{sizeof(fuse_out_header), -EIO, in.unique};
    std::memcpy(e.header->in_out, &out, sizeof out);
    e.header->ent.payload_sz = 0;
    return;
  }
  ring_requests_.fetch_add(1, std::memory_order_relaxed);
  const size_t op = in.len - head - payload;
  std::memcpy(e.wire.get(), &in, head);
  std::memcpy(e.wire.get() + head, e.header->op_in, op);
  std::memcpy(e.wire.get() + head + op, e.payload, payload);

  e.unique = in.unique;
  e.replied.store(false, std::memory_order_relaxed);
  {
    MutexLock lock(pending_mu_);
    pending_[in.unique] = &e;
  }
  t_serving = &e;
  fuse_buf buf{};
  buf.size = in.len;
  buf.mem = e.wire.get();
  fuse_session_process_buf(se_, &buf);
  t_serving = nullptr;
  // Requests libfuse never answers (the kernel sends them on /dev/fuse,
  // but an entry must be committed to serve again): an empty error reply.
  const bool unanswered = in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET ||
                          in.opcode == FUSE_INTERRUPT || in.opcode == FUSE_NOTIFY_REPLY;
  if (unanswered && !e.replied.load(std::memory_order_acquire)) {
    fuse_out_header none{sizeof(fuse_out_header), -ENOSYS, in.unique};
    std::memcpy(e.header->in_out, &none, sizeof none);
    e.reply_len = 0;
    e.replied.store(true, std::memory_order_release);
  }
  // cgcorefs's handlers reply before they return; one that replied later,
  // from another thread, is waited for here.
  e.replied.wait(false, std::memory_order_acquire);
  {
    MutexLock lock(pending_mu_);
    pending_.erase(in.unique);
  }
  auto* out = reinterpret_cast<fuse_out_header*>(e.header->in_out);
  out->len = static_cast<uint32_t>(sizeof(fuse_out_header) + e.reply_len);
  e.header->ent.payload_sz = static_cast<uint32_t>(e.reply_len);
}

void UringTransport::stop() {
  stopping_.store(true);
  if (go_.load() == 0) {
    go_.store(-1);
    go_.notify_all();
  }
  for (auto& t : threads_)
    if (t->thread.joinable()) t->thread.join();
  threads_.clear();  // closes the rings: the kernel cancels their entries
}

}  // namespace cgcore::fuse
