#include "controllers/cpuacct.h"

#include <new>
#include <vector>

#include "core/parse.h"

namespace cgcore {

namespace {

CpuacctCss& acct(Css& css) { return static_cast<CpuacctCss&>(css); }

// USER_HZ is 100 on every architecture the kernel's ABI exposes it on:
// nanoseconds to clock ticks is a division by 10^7 (nsec_to_clock_t).
constexpr uint64_t kNsPerUserTick = 10'000'000;

}  // namespace

Result<std::unique_ptr<Css>> CpuacctController::css_alloc(Css*) {
  try {
    return std::unique_ptr<Css>(new CpuacctCss);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "cpuacct: out of memory for a css");
  }
}

void CpuacctController::charge(Css& css, uint64_t user_ns, uint64_t system_ns) {
  for (Css* c = &css; c; c = c->parent()) {
    acct(*c).user_ns_.fetch_add(user_ns, std::memory_order_relaxed);
    acct(*c).system_ns_.fetch_add(system_ns, std::memory_order_relaxed);
  }
}

Result<std::string> CpuacctController::read_usage(Engine&, Css& css) {
  return std::to_string(acct(css).usage_ns()) + "\n";
}

Status CpuacctController::write_usage(Engine&, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  if (*v != 0) return Status::Error(EINVAL, "cpuacct.usage can only be reset, by writing 0");
  CpuacctCss& a = acct(css);
  a.reset_user_.store(a.total_user(), std::memory_order_relaxed);
  a.reset_system_.store(a.total_system(), std::memory_order_relaxed);
  return Status::Ok();
}

Result<std::string> CpuacctController::read_usage_user(Engine&, Css& css) {
  return std::to_string(acct(css).user_ns()) + "\n";
}

Result<std::string> CpuacctController::read_usage_sys(Engine&, Css& css) {
  return std::to_string(acct(css).system_ns()) + "\n";
}

Result<std::string> CpuacctController::read_stat(Engine&, Css& css) {
  return "user " + std::to_string(acct(css).user_ns() / kNsPerUserTick) + "\nsystem " +
         std::to_string(acct(css).system_ns() / kNsPerUserTick) + "\n";
}

Status CpuacctController::check_invariants(Engine& engine) {
  engine.cgroup_mutex().AssertHeld();
  std::vector<const Cgroup*> stack{&engine.hierarchy_of_locked(id()).root()};
  while (!stack.empty()) {
    const Cgroup* cg = stack.back();
    stack.pop_back();
    const Css* own = cg->is_root() ? &engine.root_css(id()) : cg->css(id());
    uint64_t kids_user = 0, kids_system = 0;
    for (const auto& [name, child] : cg->children()) {
      stack.push_back(child);
      if (const Css* c = child->css(id())) {
        kids_user += static_cast<const CpuacctCss*>(c)->total_user();
        kids_system += static_cast<const CpuacctCss*>(c)->total_system();
      }
    }
    if (!own) continue;
    const CpuacctCss& a = static_cast<const CpuacctCss&>(*own);
    // Charges hold the cgroup mutex (CpuController::charge): none runs
    // while the checker holds every engine lock.
    if (a.total_user() < kids_user || a.total_system() < kids_system)
      return Status::Error(EIO, "cpuacct: " + cg->path() + " counts less CPU time than its children");
    if (a.user_ns() > a.total_user() || a.system_ns() > a.total_system())
      return Status::Error(EIO, "cpuacct: " + cg->path() + " shows more than it was charged");
  }
  return Status::Ok();
}

}  // namespace cgcore
