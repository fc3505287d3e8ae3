#include "host/host_tracker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "fs/cgroupfs.h"
#include "host/connector.h"
#include "host/cpu_sync.h"
#include "host/memory_sync.h"
#include "host/mirror.h"
#include "host/taskstats.h"

namespace cgcore::host {

Result<std::unique_ptr<HostTracker>> HostTracker::create(Engine& engine, BuiltinOptions builtin,
                                                         HostOptions options) {
  auto queue = std::make_shared<EffectQueue>();
  builtin.affinity_sink = EffectQueue::sink(queue);
  builtin.nice_sink = EffectQueue::nice_sink(queue);
  Result<BuiltinControllers> controllers = register_builtin_controllers(engine, std::move(builtin));
  if (!controllers.ok()) return controllers.status();
  return std::unique_ptr<HostTracker>(
      new HostTracker(engine, *controllers, std::move(queue), std::move(options)));
}

HostTracker::HostTracker(Engine& engine, const BuiltinControllers& controllers,
                         std::shared_ptr<EffectQueue> queue, HostOptions options)
    : engine_(engine),
      controllers_(controllers),
      opts_(std::move(options)),
      proc_(opts_.proc_root),
      pid_namespaces_(proc_) {
  if (!opts_.log)
    opts_.log = [](const std::string& line) { std::fprintf(stderr, "cgcore-host: %s\n", line.c_str()); };
  effects_ = std::make_unique<Effects>(engine_, proc_, records_, std::move(queue),
                                       opts_.apply_effects && proc_.is_host(), ::getpid(), opts_.log);
  if (opts_.freezer_record) effects_->set_freezer_record(opts_.freezer_record);
  mirror_ = std::make_unique<Mirror>(engine_, proc_, records_, *effects_, opts_.log);
  memory_ = std::make_unique<MemorySync>(engine_, proc_, records_, controllers_.memory,
                                         controllers_.memrlimit, effects_.get(), opts_.log);
  cpu_ = std::make_unique<CpuSync>(engine_, proc_, records_, controllers_.cpu);
}

HostTracker::~HostTracker() { stop(); }

void HostTracker::sync_cpu_usage() {
  mirror_->serialized([this] { cpu_->run(); });
}

bool HostTracker::ensure_pid(Pid pid) { return mirror_->ensure_pid(pid); }

void HostTracker::add_new_threads(Pid tgid) {
  // The connector's event for a thread is in the socket before the clone
  // that made it returns, so a thread made before this write is known once
  // the waiting events are applied: one poll instead of a /proc listing.
  if (catch_up_events()) return;
  mirror_->add_new_threads(tgid);
}

std::optional<fs::TaskIdentity> HostTracker::identity(Pid tid) {
  std::optional<ProcessRecord> rec = records_.process(tid);
  if (!rec || rec->ino == 0 || rec->start == 0) return std::nullopt;
  return fs::TaskIdentity{.start = rec->start, .ino = rec->ino};
}

void HostTracker::settle_exits(std::span<const Pid> tids) {
  (void)catch_up_events();
  mirror_->recheck_tasks(tids);
}

void HostTracker::resync() {
  mirror_->resync(false);
  resyncs_.fetch_add(1);
}

Result<Pid> HostTracker::reserve_fork(Pid caller, bool thread, bool share_mm) {
  return mirror_->reserve_fork(caller, thread, share_mm);
}

void HostTracker::recheck_cgroup_mates(Pid caller) {
  // Bounded: a refusal costs at most this many /proc reads.
  mirror_->recheck_cgroup_mates(caller, 4096);
}

bool HostTracker::catch_up_events() {
  const int fd = conn_fd_.load();
  if (fd < 0 || !using_connector_.load() || paused_.load()) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return true;  // nothing waiting
  std::unique_lock<std::mutex> l(catch_up_mu_);
  const uint64_t ticket = ++catch_up_asked_;
  wake();
  catch_up_cv_.wait_for(l, std::chrono::milliseconds(50), [&] { return catch_up_done_ >= ticket; });
  return true;
}

Result<fs::Backend::EventFds> HostTracker::take_event_fds(const fs::Caller& caller, int efd, int cfd) {
  return event_notifier_.take(caller.pid, efd, cfd);
}

std::shared_ptr<const fs::PidNamespace> HostTracker::pid_namespace(const fs::Caller& caller) {
  return pid_namespaces_.of(caller.pid);
}

void HostTracker::kill_processes(std::span<const Pid> tgids) { effects_->kill(tgids); }

void HostTracker::release(const std::string& agent, const std::string& cgroup_path) {
  opts_.log("release agent " + agent + " " + cgroup_path + " (not run: cgcorefs runs no programs)");
}

void HostTracker::apply_effects() { effects_->apply(); }

std::string HostTracker::open_connector() {
  if (!opts_.use_connector) return "the connector is disabled";
  if (!proc_.is_host()) return proc_.root() + " is not the host's /proc";
  if (!in_initial_pid_namespace())
    return "this process is in a child pid namespace (the connector reports the initial namespace's ids)";
  Result<std::unique_ptr<Connector>> c = Connector::open(opts_.rcvbuf_bytes);
  if (c.ok()) {
    conn_ = std::move(c.value());
    return "";
  }
  std::string why = "the process-events connector is unavailable: " + c.status().message();
  if ((c.err() == EPERM || c.err() == EACCES) && c.status().message().find("CAP_NET_ADMIN") == std::string::npos)
    why += " (it needs CAP_NET_ADMIN)";
  return why;
}

Status HostTracker::start() {
  if (thread_.joinable()) return Status::Ok();
  if (!proc_.pids()) return Status::Error(EIO, "cannot read " + proc_.root());
  // Subscribe first, then scan: whatever changes during the scan is still
  // queued as an event, and applying it again is harmless.
  const std::string why = open_connector();
  using_connector_.store(conn_ != nullptr);
  conn_fd_.store(conn_ ? conn_->fd() : -1);
  if (!mirror_->resync(/*initial=*/true)) {
    conn_.reset();
    using_connector_.store(false);
    return Status::Error(EIO, "cannot read " + proc_.root());
  }
  const std::string counts = std::to_string(records_.nr_processes()) + " processes (" +
                             std::to_string(records_.nr_tasks()) + " threads)";
  if (conn_)
    opts_.log("following " + counts + " through the process-events connector");
  else
    opts_.log(why + ": following " + counts + " by rescanning " + proc_.root() + " every " +
              std::to_string(tick_ms()) + " ms; a pid written to cgroup.procs is looked up at once");
  if (!effects_->enabled()) opts_.log("effects are off: no signal or affinity reaches a process");
  if (opts_.memory_sync_ms > 0 && controllers_.cpu) {
    // The baseline of the CPU time pass: what ran before is not charged.
    mirror_->serialized([this] { cpu_->run(); });
    if (proc_.is_host()) {
      Result<std::unique_ptr<Taskstats>> ts = Taskstats::open();
      if (ts.ok()) {
        taskstats_ = std::move(ts.value());
        using_taskstats_.store(true);
      }
      else
        opts_.log(ts.status().message() +
                  ": an exiting thread's CPU time after its last /proc sample is not counted");
    }
  }
  effects_->set_active(true);
  stopping_.store(false);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { loop(); });
  return Status::Ok();
}

void HostTracker::stop(bool continue_frozen) {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  wake();
  thread_.join();
  effects_->set_active(false);
  conn_fd_.store(-1);
  conn_.reset();
  taskstats_.reset();
  using_taskstats_.store(false);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  using_connector_.store(false);
  // Nothing would ever continue the processes the freezer stopped.
  if (continue_frozen) effects_->continue_all();
}

void HostTracker::wake() {
  if (wake_fd_ < 0) return;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

int HostTracker::tick_ms() const { return std::max(10, opts_.rescan_ms); }

// The background thread: events as they come; every tick the pending
// checks, the fallback rescan and the freezer pass; memory on its own
// period.
void HostTracker::loop() {
  using Clock = std::chrono::steady_clock;
  const auto tick = std::chrono::milliseconds(tick_ms());
  const auto mem_period = std::chrono::milliseconds(std::max(0, opts_.memory_sync_ms));
  auto next_tick = Clock::now() + tick;
  auto next_mem = Clock::now() + mem_period;
  while (!stopping_.load()) {
    auto now = Clock::now();
    auto until = next_tick;
    if (mem_period.count() > 0) until = std::min(until, next_mem);
    const int timeout = static_cast<int>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1));
    const bool held = held_.load();
    const bool reading = conn_ && !paused_.load() && !held;
    pollfd fds[3] = {{wake_fd_, POLLIN, 0},
                     {reading ? conn_->fd() : -1, POLLIN, 0},
                     {taskstats_ ? taskstats_->fd() : -1, POLLIN, 0}};
    (void)::poll(fds, 3, timeout);
    if (stopping_.load()) break;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      (void)!::read(wake_fd_, &v, sizeof v);
    }
    uint64_t asked;
    bool asked_anew;
    {
      std::lock_guard<std::mutex> l(catch_up_mu_);
      asked = catch_up_asked_;
      asked_anew = asked > catch_up_done_;
    }
    // Exits first: the kernel sends a thread's statistics before its
    // connector exit event, so the engine still has the thread.
    if (fds[2].revents & (POLLIN | POLLERR)) drain_taskstats();
    if (reading && (fds[1].revents & (POLLIN | POLLERR))) drain();
    if (held && asked_anew && conn_ && !paused_.load()) drain();
    if (asked) {
      std::lock_guard<std::mutex> l(catch_up_mu_);
      if (catch_up_done_ < asked) {
        catch_up_done_ = asked;
        catch_up_cv_.notify_all();
      }
    }
    now = Clock::now();
    if (now >= next_tick) {
      next_tick = now + tick;
      if (!conn_) {
        drain_taskstats();  // exits the rescan is about to find
        mirror_->resync(false);
        resyncs_.fetch_add(1);
        // On a large host a scan takes a while (some 25 us a process):
        // spend at most a fifth of the time scanning.
        const auto took = Clock::now() - now;
        next_tick = std::max(next_tick, now + 5 * took);
      }
      mirror_->recheck_pending();
      // A reserved fork whose child has not shown up in two ticks either
      // failed in the kernel or is found in /proc now.
      mirror_->expire_reservations(2 * tick);
      // Decisions of engine callers that are not the fs (embedders, tests).
      effects_->apply();
      effects_->reconcile_freezer();
    }
    if (mem_period.count() > 0 && now >= next_mem) {
      next_mem = now + mem_period;
      mirror_->serialized([this] {
        memory_->run();
        cpu_->run();
      });
      // The pass reads /proc for every process: on a large host, as for the
      // rescan, it takes at most a fifth of the time.
      const auto took = Clock::now() - now;
      next_mem = std::max(next_mem, now + 5 * took);
    }
  }
}

void HostTracker::drain() {
  std::vector<ProcEvent> events;
  for (int round = 0; round < 64 && !stopping_.load() && !paused_.load(); ++round) {
    events.clear();
    const Connector::Read r = conn_->read(events);
    if (r == Connector::Read::kOverflow) {
      const int64_t n = ++overflows_;
      if (worth_logging(n)) opts_.log("process events were lost (socket buffer full): resynchronising from /proc");
      mirror_->resync(false);
      resyncs_.fetch_add(1);
      continue;
    }
    if (r == Connector::Read::kError) {
      opts_.log(std::string("reading the process-events connector failed: ") + std::strerror(errno) +
                "; falling back to rescanning /proc");
      conn_fd_.store(-1);
      conn_.reset();
      using_connector_.store(false);
      return;
    }
    if (events.empty()) return;
    drain_taskstats();  // statistics of the exits among these events
    mirror_->apply(events);
    events_seen_.fetch_add(static_cast<int64_t>(events.size()));
  }
}

void HostTracker::drain_taskstats() {
  if (!taskstats_) return;
  std::vector<Taskstats::Exit> exits;
  if (!taskstats_->read(exits)) {
    opts_.log(std::string("reading taskstats failed: ") + std::strerror(errno) +
              "; exiting threads' last CPU time is counted from /proc samples only");
    taskstats_.reset();
    using_taskstats_.store(false);
  }
  if (!exits.empty()) mirror_->serialized([&] { cpu_->on_exits(exits); });
}

HostTracker::Stats HostTracker::stats() const {
  Stats s;
  s.overflows = overflows_.load();
  s.stale_events = mirror_->stale_events();
  s.affinity_set = effects_->affinity_set();
  s.affinity_errors = effects_->affinity_errors();
  s.signals = effects_->signals();
  s.forks_over_limit = mirror_->forks_over_limit();
  s.threads_refused = mirror_->threads_refused();
  s.memory_refused = memory_->refused();
  s.oom_kills = memory_->oom_kills();
  s.memory_reclaims = memory_->reclaims();
  s.nice_set = effects_->nice_set();
  s.nice_errors = effects_->nice_errors();
  s.cpu_charged_ns = cpu_->charged_ns();
  return s;
}

void HostTracker::TEST_pause_events(bool paused) {
  paused_.store(paused);
  wake();
}

void HostTracker::TEST_hold_events(bool held) {
  held_.store(held);
  wake();
}

}  // namespace cgcore::host
