#include "controllers/cpuset.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <fstream>
#include <iterator>
#include <new>
#include <utility>

#include "core/cgroup.h"
#include "core/css_set.h"
#include "core/engine.h"
#include "core/hierarchy.h"
#include "core/migration.h"
#include "core/parse.h"
#include "core/task.h"

namespace cgcore {
namespace {

// Ids above this are refused by the topology: keeps every set small.
constexpr uint32_t kMaxIds = 65536;

Status bad_number(const Result<uint64_t>& r, std::string_view file, std::string_view text) {
  return Status::Error(r.err(), "cpuset." + std::string(file) + ": '" +
                                    std::string(strstrip(text)) + "': " +
                                    r.status().message());
}

// Reads a sysfs list file; empty on any failure.
CpuSet read_list_file(const char* path) {
  std::ifstream in(path);
  if (!in) return CpuSet();
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<CpuSet> r = CpuSet::parse(strstrip(text), kMaxIds);
  return r.ok() ? std::move(r).value() : CpuSet();
}

}  // namespace

// ---------------------------------------------------------------- CpuSet

CpuSet CpuSet::Range(uint32_t first, uint32_t last) {
  CpuSet s;
  if (first > last) return s;
  s.words_.assign(last / 64 + 1, 0);
  for (uint32_t w = first / 64; w <= last / 64; ++w) {
    uint32_t lo = w == first / 64 ? first % 64 : 0;
    uint32_t hi = w == last / 64 ? last % 64 : 63;
    uint64_t mask = (hi == 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) & ~((uint64_t{1} << lo) - 1);
    s.words_[w] |= mask;
  }
  return s;
}

CpuSet CpuSet::Of(std::initializer_list<uint32_t> ids) {
  CpuSet s;
  for (uint32_t id : ids) s.set(id);
  return s;
}

void CpuSet::set(uint32_t id) {
  size_t w = id / 64;
  if (w >= words_.size()) words_.resize(w + 1, 0);
  words_[w] |= uint64_t{1} << (id % 64);
}

void CpuSet::reset(uint32_t id) {
  size_t w = id / 64;
  if (w >= words_.size()) return;
  words_[w] &= ~(uint64_t{1} << (id % 64));
  trim();
}

void CpuSet::trim() {
  while (!words_.empty() && words_.back() == 0) words_.pop_back();
}

size_t CpuSet::count() const {
  size_t n = 0;
  for (uint64_t w : words_) n += static_cast<size_t>(__builtin_popcountll(w));
  return n;
}

uint32_t CpuSet::end() const {
  if (words_.empty()) return 0;
  return static_cast<uint32_t>((words_.size() - 1) * 64 + 64 - __builtin_clzll(words_.back()));
}

bool CpuSet::subset_of(const CpuSet& o) const {
  for (size_t i = 0; i < words_.size(); ++i) {
    uint64_t other = i < o.words_.size() ? o.words_[i] : 0;
    if (words_[i] & ~other) return false;
  }
  return true;
}

bool CpuSet::intersects(const CpuSet& o) const {
  size_t n = std::min(words_.size(), o.words_.size());
  for (size_t i = 0; i < n; ++i)
    if (words_[i] & o.words_[i]) return true;
  return false;
}

CpuSet CpuSet::operator&(const CpuSet& o) const {
  CpuSet r;
  r.words_.resize(std::min(words_.size(), o.words_.size()));
  for (size_t i = 0; i < r.words_.size(); ++i) r.words_[i] = words_[i] & o.words_[i];
  r.trim();
  return r;
}

CpuSet CpuSet::operator|(const CpuSet& o) const {
  CpuSet r;
  r.words_.resize(std::max(words_.size(), o.words_.size()));
  for (size_t i = 0; i < r.words_.size(); ++i)
    r.words_[i] = (i < words_.size() ? words_[i] : 0) | (i < o.words_.size() ? o.words_[i] : 0);
  return r;
}

CpuSet CpuSet::minus(const CpuSet& o) const {
  CpuSet r = *this;
  for (size_t i = 0; i < r.words_.size() && i < o.words_.size(); ++i) r.words_[i] &= ~o.words_[i];
  r.trim();
  return r;
}

std::string CpuSet::to_string() const {
  std::string out;
  const uint32_t e = end();
  uint32_t i = 0;
  while (i < e) {
    if (!test(i)) {
      ++i;
      continue;
    }
    uint32_t j = i;
    while (j + 1 < e && test(j + 1)) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(i);
    if (j != i) out += '-' + std::to_string(j);
    i = j + 1;
  }
  return out;
}

std::string CpuSet::format() const { return to_string() + "\n"; }

Result<CpuSet> CpuSet::parse(std::string_view s, uint32_t nbits) {
  // The scanner of lib/bitmap-str.c, with its unsigned 32-bit arithmetic: a
  // region's numbers are u32, "N" is nbits - 1, and "a" alone means a-a with
  // group a + 1 (so 4294967295 wraps to group 0: EINVAL, as the host says).
  auto at = [&](size_t k) -> char { return k < s.size() ? s[k] : '\0'; };
  auto end_of_str = [&](size_t k) { return at(k) == '\0' || at(k) == '\n'; };
  auto sep = [&](size_t k) { return k < s.size() && (kisspace(s[k]) || s[k] == ','); };
  auto end_of_region = [&](size_t k) { return sep(k) || end_of_str(k); };
  const uint32_t lastbit = nbits - 1;

  // One number at k; advances k. EINVAL without digits, EOVERFLOW past u32.
  auto getnum = [&](size_t& k, uint32_t& num) -> Status {
    if (at(k) == 'N') {
      num = lastbit;
      ++k;
      return Status::Ok();
    }
    const Digits n = parse_digits(s.substr(std::min(k, s.size())), 10);
    if (n.used == 0) return Status::Error(EINVAL, "a number was expected");
    k += n.used;
    if (n.overflow || n.value > UINT32_MAX) return Status::Error(EOVERFLOW, "a number is too large");
    num = static_cast<uint32_t>(n.value);
    return Status::Ok();
  };

  CpuSet out;
  size_t k = 0;
  bool more = true;
  while (more) {
    while (sep(k)) ++k;  // find the next region
    if (end_of_str(k)) break;
    uint32_t start = 0, end = 0, off = 0, group = 0;
    if (Status st = getnum(k, start); !st.ok()) return st;
    if (end_of_region(k)) {
      end = start;
      off = end + 1;
      group = end + 1;
      more = !end_of_str(k);
    } else {
      if (at(k) != '-') return Status::Error(EINVAL, "'-' or ',' was expected");
      ++k;
      if (Status st = getnum(k, end); !st.ok()) return st;
      if (end_of_region(k)) {
        off = end + 1;
        group = end + 1;
        more = !end_of_str(k);
      } else {
        if (at(k) != ':') return Status::Error(EINVAL, "':' or ',' was expected");
        ++k;
        if (Status st = getnum(k, off); !st.ok()) return st;
        if (at(k) != '/') return Status::Error(EINVAL, "'/' was expected");
        ++k;
        if (Status st = getnum(k, group); !st.ok()) return st;
      }
    }
    if (start > end || group == 0 || off > group)
      return Status::Error(EINVAL, "invalid range " + std::to_string(start) + "-" +
                                       std::to_string(end));
    if (end >= nbits)
      return Status::Error(ERANGE, "id " + std::to_string(end) + " does not exist (ids are below " +
                                       std::to_string(nbits) + ")");
    // u32 like the kernel's loop: a huge group wraps around (the host turns
    // "1-1:1/4294967295" into 0-1); the loop still ends, since every wrap
    // lands lower than the last start.
    for (uint32_t first = start; first <= end; first += group) {
      uint32_t n = std::min(end - first + 1, off);
      for (uint32_t b = 0; b < n; ++b) out.set(first + b);
    }
  }
  return out;
}

// ---------------------------------------------------------------- topology

CpusetTopology CpusetTopology::host() {
  CpusetTopology t;
  CpuSet possible = read_list_file("/sys/devices/system/cpu/possible");
  long conf = sysconf(_SC_NPROCESSORS_CONF);
  t.nr_cpu_ids = !possible.empty() ? possible.end() : static_cast<uint32_t>(std::max(conf, 1L));
  t.online_cpus = read_list_file("/sys/devices/system/cpu/online");
  if (t.online_cpus.empty()) {
    long onln = sysconf(_SC_NPROCESSORS_ONLN);
    t.online_cpus = CpuSet::Range(0, static_cast<uint32_t>(std::max(onln, 1L) - 1));
  }
  t.online_mems = read_list_file("/sys/devices/system/node/has_memory");
  if (t.online_mems.empty()) t.online_mems = read_list_file("/sys/devices/system/node/online");
  if (t.online_mems.empty()) t.online_mems = CpuSet::Of({0});
  t.possible_mems = read_list_file("/sys/devices/system/node/possible") | t.online_mems;
  if (std::ifstream in("/sys/devices/system/cpu/kernel_max"); in) {
    long max = -1;
    if (in >> max && max >= 0) t.nr_cpus_config = static_cast<uint32_t>(max + 1);
  }
  return t;
}

CpusetTopology CpusetTopology::uniform(uint32_t cpus, uint32_t nodes) {
  CpusetTopology t;
  t.nr_cpu_ids = std::max(cpus, 1u);
  t.online_cpus = CpuSet::Range(0, t.nr_cpu_ids - 1);
  t.online_mems = CpuSet::Range(0, std::max(nodes, 1u) - 1);
  t.possible_mems = t.online_mems;
  return t;
}

// ---------------------------------------------------------------- controller

CpusetController::CpusetController(CpusetTopology t, Sinks sinks)
    : affinity_sink_(std::move(sinks.affinity)), mm_sink_(std::move(sinks.mm_migration)) {
  if (t.online_cpus.empty()) t.online_cpus = CpuSet::Of({0});
  nr_cpu_ids_ = std::clamp(std::max(t.nr_cpu_ids, t.online_cpus.end()), 1u, kMaxIds);
  t.nr_cpu_ids = nr_cpu_ids_;
  nr_cpus_config_ = std::max(t.nr_cpus_config, nr_cpu_ids_);
  t.nr_cpus_config = nr_cpus_config_;
  t.online_cpus = t.online_cpus & CpuSet::Range(0, nr_cpu_ids_ - 1);
  if (t.online_cpus.empty()) t.online_cpus = CpuSet::Of({0});
  if (t.online_mems.empty()) t.online_mems = CpuSet::Of({0});
  max_numnodes_ = std::clamp(std::max({t.max_numnodes, t.online_mems.end(), t.possible_mems.end()}),
                             1u, kMaxIds);
  t.max_numnodes = max_numnodes_;
  t.online_mems = t.online_mems & CpuSet::Range(0, max_numnodes_ - 1);
  if (t.online_mems.empty()) t.online_mems = CpuSet::Of({0});
  t.possible_mems = (t.possible_mems | t.online_mems) & CpuSet::Range(0, max_numnodes_ - 1);
  possible_mems_ = t.possible_mems;
  t.max_relax_domain_level = std::max(t.max_relax_domain_level, -1);
  max_relax_domain_level_ = t.max_relax_domain_level;
  ExclusiveLock<SharedMutex> l(callback_lock_);
  topo_ = std::move(t);
}

bool CpusetController::on_v2(const Css& css) {
  return css.cgroup()->hierarchy().is_default();
}

std::vector<CpusetCss*> CpusetController::children_of(const CpusetCss& css) const {
  std::vector<CpusetCss*> out;
  for (const auto& [name, child] : css.cgroup()->children())
    if (Css* c = child->css(id())) out.push_back(&cs(*c));
  return out;
}

std::vector<Cgroup*> CpusetController::cgroups_of(CpusetCss& cp) const {
  std::vector<Cgroup*> out;
  std::vector<Cgroup*> stack{cp.cgroup()};
  while (!stack.empty()) {
    Cgroup* cg = stack.back();
    stack.pop_back();
    out.push_back(cg);
    for (const auto& [name, child] : cg->children())
      if (!child->css(id())) stack.push_back(child);
  }
  return out;
}

Result<std::unique_ptr<Css>> CpusetController::css_alloc(Css* parent) {
  try {
    auto c = std::make_unique<CpusetCss>();
    if (!parent) {
      // Registration binds the controller to the default hierarchy: the root
      // allows every possible id there (bind() switches for v1).
      SharedLock<SharedMutex> l(callback_lock_);
      c->flags_ = CpusetCss::kCpuExclusive | CpusetCss::kMemExclusive |
                  CpusetCss::kSchedLoadBalance;
      c->cpus_ = CpuSet::Range(0, nr_cpu_ids_ - 1);
      c->mems_ = possible_mems_;
      c->effective_cpus_ = topo_.online_cpus;
      c->effective_mems_ = topo_.online_mems;
      c->old_mems_ = topo_.online_mems;
    } else {
      c->flags_ = CpusetCss::kSchedLoadBalance;
      // v2 always migrates memory with its tasks (no file to change it).
      if (on_v2(*parent)) c->flags_ |= CpusetCss::kMemoryMigrate;
    }
    return std::unique_ptr<Css>(std::move(c));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "cpuset: out of memory allocating a cpuset");
  }
}

Status CpusetController::css_online(Css& css) {
  if (css.is_root()) return Status::Ok();
  CpusetCss& c = cs(css);
  const CpusetCss& parent = cs(*css.parent());
  ExclusiveLock<SharedMutex> l(callback_lock_);
  c.flags_ |= parent.flags_ & (CpusetCss::kSpreadPage | CpusetCss::kSpreadSlab);
  if (on_v2(css)) {
    c.effective_cpus_ = parent.effective_cpus_;
    c.effective_mems_ = parent.effective_mems_;
    c.old_mems_ = c.effective_mems_;
    return Status::Ok();
  }
  // The core copies the parent's cgroup.clone_children into the new cgroup;
  // at this point it may not have yet, so the parent's flag decides (v1 only
  // creates csses with their cgroup, so the two are the same flag).
  Cgroup* cg = css.cgroup();
  const bool clone = cg->clone_children() || (cg->parent() && cg->parent()->clone_children());
  if (clone) {
    bool exclusive_sibling = false;
    for (CpusetCss* s : children_of(parent))
      if (s != &c && s->has(CpusetCss::kCpuExclusive | CpusetCss::kMemExclusive))
        exclusive_sibling = true;
    // The kernel refuses to clone next to an exclusive sibling (the copy
    // would overlap it): the cpuset then starts empty.
    if (!exclusive_sibling) {
      c.cpus_ = parent.cpus_;
      c.mems_ = parent.mems_;
      c.effective_cpus_ = parent.cpus_;
      c.effective_mems_ = parent.mems_;
    }
  }
  c.old_mems_ = c.effective_mems_;
  return Status::Ok();
}

void CpusetController::bind(Css& root_css) {
  CpusetCss& r = cs(root_css);
  ExclusiveLock<SharedMutex> l(callback_lock_);
  if (on_v2(r)) {
    r.cpus_ = CpuSet::Range(0, nr_cpu_ids_ - 1);
    r.mems_ = possible_mems_;
  } else {
    r.cpus_ = r.effective_cpus_;
    r.mems_ = r.effective_mems_;
  }
}

// ---------------------------------------------------------------- migration

Status CpusetController::can_attach(TaskSet& tset) {
  moves_.clear();
  try {
    moves_.reserve(tset.nr_tasks());
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "cpuset: out of memory preparing a migration");
  }
  Status st;
  tset.for_each([&](Task& task, CssSet* src, CssSet& dst) {
    if (!st.ok()) return;
    CpusetCss* from = &cs(*src->css(id()));
    CpusetCss* to = &cs(*dst.css(id()));
    if (from == to) return;
    // v1 refuses a cpuset without CPUs or nodes; v2's effective sets are
    // inherited and never empty, but the kernel checks them anyway.
    if (to->effective_cpus_.empty())
      st = Status::Error(ENOSPC, "cpuset: cannot attach to " + to->cgroup()->path() +
                                     ": its cpuset.cpus is empty");
    else if (!on_v2(*to) && to->mems_.empty())
      st = Status::Error(ENOSPC, "cpuset: cannot attach to " + to->cgroup()->path() +
                                     ": its cpuset.mems is empty");
    else
      moves_.push_back(Move{&task, from, to});
  });
  if (!st.ok()) moves_.clear();
  return st;
}

void CpusetController::cancel_attach(TaskSet&) { moves_.clear(); }

void CpusetController::post_attach(TaskSet&) {
  {
    ExclusiveLock<SharedMutex> l(callback_lock_);
    for (const Move& m : moves_) {
      const bool changed = !(m.src->effective_cpus_ == m.dst->effective_cpus_) ||
                           !(m.src->effective_mems_ == m.dst->effective_mems_);
      // v1 resets a mover's placement even when it is the same; v2 leaves
      // tasks alone when nothing changes for them (subtree_control churn).
      if (on_v2(*m.dst) && !changed) continue;
      if (affinity_sink_)
        affinity_sink_(m.task->tid(), m.dst->effective_cpus_, m.dst->effective_mems_, AffinityCause::kMove);
      // An address space follows its process's leader.
      if (m.task->tid() == m.task->process().tgid() && m.dst->has(CpusetCss::kMemoryMigrate) &&
          !(m.src->old_mems_ == m.dst->effective_mems_))
        migrate_mm_locked(m.task->process().tgid(), m.src->old_mems_, m.dst->effective_mems_);
    }
  }
  for (const Move& m : moves_) m.dst->old_mems_ = m.dst->effective_mems_;
  moves_.clear();
}

void CpusetController::fork(Task& child) {
  SharedLock<SharedMutex> l(callback_lock_);
  if (!affinity_sink_) return;
  CssSet* cset = child.cset();
  if (!cset) return;  // already exited
  const CpusetCss& c = cs(*cset->css(id()));
  affinity_sink_(child.tid(), c.effective_cpus_, c.effective_mems_, AffinityCause::kFork);
}

void CpusetController::migrate_mm_locked(Pid tgid, const CpuSet& from, const CpuSet& to) {
  nr_mm_migrations_.fetch_add(1, std::memory_order_relaxed);
  if (mm_sink_) mm_sink_(tgid, from, to);
}

// ---------------------------------------------------------------- changes

Status CpusetController::validate_change_locked(Engine& engine, const CpusetCss& cur,
                                                const Trial& t) const {
  auto within = [](const CpuSet& pc, const CpuSet& pm, uint32_t pf, const CpuSet& qc,
                   const CpuSet& qm, uint32_t qf) {
    const uint32_t excl = CpusetCss::kCpuExclusive | CpusetCss::kMemExclusive;
    return pc.subset_of(qc) && pm.subset_of(qm) && (pf & excl & ~qf) == 0;
  };
  const std::string path = cur.cgroup()->path();
  if (!on_v2(cur)) {
    for (const CpusetCss* c : children_of(cur))
      if (!within(c->cpus_, c->mems_, c->flags_, t.cpus, t.mems, t.flags))
        return Status::Error(EBUSY, "cpuset: child " + c->cgroup()->path() + " of " + path +
                                        " would no longer be within it");
    if (!cur.is_root()) {
      const CpusetCss& p = cs(*cur.parent());
      if (!within(t.cpus, t.mems, t.flags, p.cpus_, p.mems_, p.flags_))
        return Status::Error(EACCES, "cpuset: " + path + " would not be within its parent (cpus " +
                                         p.cpus_.to_string() + ", mems " + p.mems_.to_string() +
                                         (p.has(CpusetCss::kCpuExclusive) ? ", cpu_exclusive" : "") +
                                         (p.has(CpusetCss::kMemExclusive) ? ", mem_exclusive" : "") +
                                         ")");
    }
  }
  if (cur.is_root()) return Status::Ok();
  if (engine.populated(*cur.cgroup())) {
    if (!cur.cpus_.empty() && t.cpus.empty())
      return Status::Error(ENOSPC, "cpuset: " + path + " has tasks and cannot lose all its CPUs");
    if (!cur.mems_.empty() && t.mems.empty())
      return Status::Error(ENOSPC, "cpuset: " + path + " has tasks and cannot lose all its nodes");
  }
  // The kernel's deadline-bandwidth check: an exclusive, load-balanced
  // cpuset may not shrink below the deadline bandwidth reserved on its
  // CPUs, and since every CPU's fair server reserves some, no such cpuset
  // may lose all its CPUs. (Shrinking to fewer CPUs passes unless deadline
  // tasks need them; this model runs none.)
  if (cur.has(CpusetCss::kCpuExclusive) && cur.has(CpusetCss::kSchedLoadBalance) &&
      !cur.cpus_.empty() && t.cpus.empty())
    return Status::Error(EBUSY, "cpuset: " + path +
                                    " is cpu_exclusive and load-balanced: the deadline bandwidth "
                                    "reserved on its CPUs keeps it from losing them all");
  for (const CpusetCss* c : children_of(cs(*cur.parent()))) {
    if (c == &cur) continue;
    if (((t.flags | c->flags_) & CpusetCss::kCpuExclusive) && t.cpus.intersects(c->cpus_))
      return Status::Error(EINVAL, "cpuset: " + path + " would share CPUs with " +
                                       c->cgroup()->path() + " while one is cpu_exclusive");
    if (((t.flags | c->flags_) & CpusetCss::kMemExclusive) && t.mems.intersects(c->mems_))
      return Status::Error(EINVAL, "cpuset: " + path + " would share nodes with " +
                                       c->cgroup()->path() + " while one is mem_exclusive");
  }
  return Status::Ok();
}

void CpusetController::apply_locked(Engine& engine, CpusetCss& cur, const Trial& t) {
  ExclusiveLock<SharedMutex> l(callback_lock_);
  cur.cpus_ = t.cpus;
  cur.mems_ = t.mems;
  cur.flags_ = t.flags;
  if (!cur.cpus_.empty() && !cur.mems_.empty()) cur.stranded_ = false;
  propagate_locked(engine, cur);
}

void CpusetController::propagate_locked(Engine& engine, CpusetCss& start) {
  std::vector<CpusetCss*> stack{&start};
  while (!stack.empty()) {
    CpusetCss* cp = stack.back();
    stack.pop_back();
    CpuSet cpus, mems;
    if (cp->is_root()) {
      cpus = topo_.online_cpus;
      mems = topo_.online_mems;
    } else {
      const CpusetCss& parent = cs(*cp->parent());
      cpus = cp->cpus_ & parent.effective_cpus_;
      mems = cp->mems_ & parent.effective_mems_;
      if (on_v2(*cp)) {
        if (cpus.empty()) cpus = parent.effective_cpus_;
        if (mems.empty()) mems = parent.effective_mems_;
      }
    }
    // Children's sets depend only on their parent's effective sets.
    if (!set_effective_locked(engine, *cp, std::move(cpus), std::move(mems))) continue;
    for (CpusetCss* c : children_of(*cp)) stack.push_back(c);
  }
}

bool CpusetController::set_effective_locked(Engine& engine, CpusetCss& cp, CpuSet cpus,
                                            CpuSet mems) {
  const bool mems_changed = !(mems == cp.effective_mems_);
  if (cpus == cp.effective_cpus_ && !mems_changed) return false;
  cp.effective_cpus_ = std::move(cpus);
  cp.effective_mems_ = std::move(mems);
  // Empty only in v1 after a hot-unplug: the tasks are about to be moved to
  // an ancestor, whose sets they get then.
  if (cp.effective_cpus_.empty() || cp.effective_mems_.empty()) return true;
  const std::vector<Cgroup*> cgroups = cgroups_of(cp);
  if (affinity_sink_)
    for (Cgroup* cg : cgroups)
      for (Pid tid : engine.cgroup_tids(*cg))
        affinity_sink_(tid, cp.effective_cpus_, cp.effective_mems_, AffinityCause::kChange);
  if (mems_changed) {
    if (cp.has(CpusetCss::kMemoryMigrate) && !(cp.old_mems_ == cp.effective_mems_)) {
      std::vector<Pid> tgids;
      for (Cgroup* cg : cgroups) {
        std::vector<Pid> more = engine.cgroup_tgids(*cg);
        tgids.insert(tgids.end(), more.begin(), more.end());
      }
      std::sort(tgids.begin(), tgids.end());
      tgids.erase(std::unique(tgids.begin(), tgids.end()), tgids.end());
      for (Pid tgid : tgids) migrate_mm_locked(tgid, cp.old_mems_, cp.effective_mems_);
    }
    cp.old_mems_ = cp.effective_mems_;
  }
  return true;
}

Status CpusetController::set_online(Engine& engine, CpuSet cpus, CpuSet mems) {
  if (&engine != this->engine())
    return Status::Error(EINVAL, "cpuset: not registered with this engine");
  if (cpus.empty()) return Status::Error(EINVAL, "cpuset: at least one CPU must be online");
  if (cpus.end() > nr_cpu_ids_)
    return Status::Error(ERANGE, "cpuset: CPU " + std::to_string(cpus.end() - 1) +
                                     " does not exist (nr_cpu_ids " + std::to_string(nr_cpu_ids_) +
                                     ")");
  if (mems.empty()) return Status::Error(EINVAL, "cpuset: at least one node must have memory");
  if (!mems.subset_of(possible_mems_))
    return Status::Error(EINVAL, "cpuset: nodes " + mems.minus(possible_mems_).to_string() +
                                     " are not possible");

  MutexLock m(engine.cgroup_mutex());
  std::vector<std::pair<CgroupPtr, CgroupPtr>> transfers;
  {
    ExclusiveLock<SharedMutex> l(callback_lock_);
    topo_.online_cpus = cpus;
    topo_.online_mems = mems;
    const bool v2 = engine.hierarchy_of_locked(id()).is_default();
    CpusetCss& root = cs(engine.root_css(id()));
    if (!v2) {
      root.cpus_ = cpus;
      root.mems_ = mems;
    }
    // Top-down, so that each cpuset sees its parent's new sets.
    std::vector<CpusetCss*> stack{&root};
    while (!stack.empty()) {
      CpusetCss* cp = stack.back();
      stack.pop_back();
      for (CpusetCss* c : children_of(*cp)) stack.push_back(c);
      if (cp->is_root()) {
        set_effective_locked(engine, *cp, cpus, mems);
        continue;
      }
      const CpusetCss& parent = cs(*cp->parent());
      CpuSet c = cp->cpus_ & parent.effective_cpus_;
      CpuSet n = cp->mems_ & parent.effective_mems_;
      if (v2) {
        if (c.empty()) c = parent.effective_cpus_;
        if (n.empty()) n = parent.effective_mems_;
        set_effective_locked(engine, *cp, std::move(c), std::move(n));
        continue;
      }
      // v1: a cpuset loses what went offline for good.
      cp->cpus_ = c;
      cp->mems_ = n;
      set_effective_locked(engine, *cp, c, n);
      if ((c.empty() || n.empty()) && engine.populated(*cp->cgroup())) {
        const CpusetCss* a = &parent;
        while (a->cpus_.empty() || a->mems_.empty()) a = &cs(*a->parent());
        transfers.emplace_back(CgroupPtr(cp->cgroup()), CgroupPtr(a->cgroup()));
      }
    }
  }
  Status first;
  for (auto& [from, to] : transfers) {
    Status st = engine.transfer_locked(*from, *to);
    if (st.ok()) continue;
    if (Css* c = from->css(id())) cs(*c).stranded_ = true;
    if (first.ok())
      first = Status::Error(st.err(), "cpuset: moving the tasks of " + from->path() + " to " +
                                          to->path() + " failed: " + st.message());
  }
  return first;
}

CpusetTopology CpusetController::topology() const {
  SharedLock<SharedMutex> l(callback_lock_);
  return topo_;
}

Result<CpuSet> CpusetController::effective_of(Engine& engine, Pid tid, bool mems) {
  if (&engine != this->engine())
    return Status::Error(EINVAL, "cpuset: not registered with this engine");
  MutexLock m(engine.cgroup_mutex());
  Result<CgroupPtr> cg = engine.task_cgroup(tid, engine.hierarchy_of_locked(id()));
  if (!cg.ok()) return cg.status();
  Css* css = engine.effective_css_locked(**cg, id());
  if (!css) return Status::Error(ESRCH, "task " + std::to_string(tid) + " has no cpuset");
  return mems ? cs(*css).effective_mems_ : cs(*css).effective_cpus_;
}

Result<CpuSet> CpusetController::effective_cpus_of(Engine& engine, Pid tid) {
  return effective_of(engine, tid, false);
}

Result<CpuSet> CpusetController::effective_mems_of(Engine& engine, Pid tid) {
  return effective_of(engine, tid, true);
}

// ---------------------------------------------------------------- invariants

// Reads topo_ without callback_lock_: the checker holds the css_set lock,
// which callback_lock_ precedes, and every writer of topo_ and of the csses
// (set_online, handlers, hooks) holds the cgroup mutex, which the checker
// holds too; the fork hook only reads.
Status CpusetController::check_invariants(Engine& engine) CG_NO_THREAD_SAFETY_ANALYSIS {
  engine.cgroup_mutex().AssertHeld();
  auto fail = [](const Cgroup& cg, const std::string& what) {
    return Status::Error(EIO, "cpuset " + cg.path() + ": " + what);
  };
  const bool v2 = engine.hierarchy_of_locked(id()).is_default();
  CpusetCss& root = cs(engine.root_css(id()));
  const Cgroup& rcg = *root.cgroup();
  if (!(root.effective_cpus_ == topo_.online_cpus) || !(root.effective_mems_ == topo_.online_mems))
    return fail(rcg, "root effective sets " + root.effective_cpus_.to_string() + " / " +
                         root.effective_mems_.to_string() + " are not the online sets");
  if (v2 ? !(root.cpus_ == CpuSet::Range(0, nr_cpu_ids_ - 1)) || !(root.mems_ == possible_mems_)
         : !(root.cpus_ == topo_.online_cpus) || !(root.mems_ == topo_.online_mems))
    return fail(rcg, "root sets " + root.cpus_.to_string() + " / " + root.mems_.to_string() +
                         " do not follow the " + (v2 ? "possible" : "online") + " sets");
  std::vector<CpusetCss*> stack{&root};
  while (!stack.empty()) {
    CpusetCss* cp = stack.back();
    stack.pop_back();
    const Cgroup& cg = *cp->cgroup();
    const std::vector<CpusetCss*> kids = children_of(*cp);
    for (CpusetCss* c : kids) {
      if (c->parent() != cp) return fail(*c->cgroup(), "css parent is not its parent cgroup's");
      stack.push_back(c);
    }
    if (cp->cpus_.end() > nr_cpu_ids_ || cp->mems_.end() > max_numnodes_)
      return fail(cg, "ids beyond the topology");
    if (!cp->effective_cpus_.subset_of(topo_.online_cpus) ||
        !cp->effective_mems_.subset_of(topo_.online_mems))
      return fail(cg, "effective sets include offline CPUs or nodes");
    for (size_t i = 0; i < kids.size(); ++i)
      for (size_t j = i + 1; j < kids.size(); ++j) {
        const CpusetCss& a = *kids[i];
        const CpusetCss& b = *kids[j];
        if (((a.flags_ | b.flags_) & CpusetCss::kCpuExclusive) && a.cpus_.intersects(b.cpus_))
          return fail(*a.cgroup(), "shares CPUs with " + b.cgroup()->path() + " while exclusive");
        if (((a.flags_ | b.flags_) & CpusetCss::kMemExclusive) && a.mems_.intersects(b.mems_))
          return fail(*a.cgroup(), "shares nodes with " + b.cgroup()->path() + " while exclusive");
      }
    if (cp->is_root()) continue;
    const CpusetCss& p = cs(*cp->parent());
    if (v2) {
      CpuSet c = cp->cpus_ & p.effective_cpus_;
      CpuSet n = cp->mems_ & p.effective_mems_;
      if (c.empty()) c = p.effective_cpus_;
      if (n.empty()) n = p.effective_mems_;
      if (!(cp->effective_cpus_ == c) || !(cp->effective_mems_ == n))
        return fail(cg, "effective sets " + cp->effective_cpus_.to_string() + " / " +
                            cp->effective_mems_.to_string() + ", want " + c.to_string() + " / " +
                            n.to_string());
      continue;
    }
    if (!cp->cpus_.subset_of(p.cpus_) || !cp->mems_.subset_of(p.mems_))
      return fail(cg, "sets " + cp->cpus_.to_string() + " / " + cp->mems_.to_string() +
                          " are not within the parent's " + p.cpus_.to_string() + " / " +
                          p.mems_.to_string());
    if ((cp->has(CpusetCss::kCpuExclusive) && !p.has(CpusetCss::kCpuExclusive)) ||
        (cp->has(CpusetCss::kMemExclusive) && !p.has(CpusetCss::kMemExclusive)))
      return fail(cg, "exclusive below a non-exclusive parent");
    if (!(cp->effective_cpus_ == cp->cpus_) || !(cp->effective_mems_ == cp->mems_))
      return fail(cg, "v1 effective sets differ from the configured ones");
    if (!cp->stranded_ && cg.has_tasks() && (cp->cpus_.empty() || cp->mems_.empty()))
      return fail(cg, "has tasks but no CPUs or no nodes");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- files

Result<std::string> CpusetController::read_cpus(Engine&, Css& css) { return cs(css).cpus_.format(); }

Result<std::string> CpusetController::read_mems(Engine&, Css& css) { return cs(css).mems_.format(); }

Result<std::string> CpusetController::read_effective_cpus(Engine&, Css& css) {
  return cs(css).effective_cpus_.format();
}

Result<std::string> CpusetController::read_effective_mems(Engine&, Css& css) {
  return cs(css).effective_mems_.format();
}

Status CpusetController::write_cpus(Engine& engine, Css& css, std::string_view text) {
  engine.cgroup_mutex().AssertHeld();
  CpusetController& self = of(css);
  CpusetCss& cur = cs(css);
  if (!css.online()) return Status::Error(ENODEV, "cpuset: the cgroup was removed");
  if (css.is_root())
    return Status::Error(EACCES, "cpuset.cpus: the root cpuset follows the online CPUs");
  text = strstrip(text);
  Trial t{CpuSet(), cur.mems_, cur.flags_};
  if (!text.empty()) {
    Result<CpuSet> r = CpuSet::parse(text, self.nr_cpu_ids_);
    if (!r.ok())
      return Status::Error(r.err(), "cpuset.cpus: '" + std::string(text) + "': " +
                                        r.status().message());
    t.cpus = std::move(r).value();
    const CpusetCss& root = cs(engine.root_css(self.id()));
    if (!t.cpus.subset_of(root.cpus_))
      return Status::Error(EINVAL, "cpuset.cpus: CPUs " + t.cpus.minus(root.cpus_).to_string() +
                                       " are not available");
  }
  if (t.cpus == cur.cpus_) return Status::Ok();
  if (Status st = self.validate_change_locked(engine, cur, t); !st.ok()) return st;
  self.apply_locked(engine, cur, t);
  return Status::Ok();
}

Status CpusetController::write_mems(Engine& engine, Css& css, std::string_view text) {
  engine.cgroup_mutex().AssertHeld();
  CpusetController& self = of(css);
  CpusetCss& cur = cs(css);
  if (!css.online()) return Status::Error(ENODEV, "cpuset: the cgroup was removed");
  if (css.is_root())
    return Status::Error(EACCES, "cpuset.mems: the root cpuset follows the nodes with memory");
  text = strstrip(text);
  Trial t{cur.cpus_, CpuSet(), cur.flags_};
  if (!text.empty()) {
    Result<CpuSet> r = CpuSet::parse(text, self.max_numnodes_);
    if (!r.ok())
      return Status::Error(r.err(), "cpuset.mems: '" + std::string(text) + "': " +
                                        r.status().message());
    t.mems = std::move(r).value();
    const CpusetCss& root = cs(engine.root_css(self.id()));
    if (!t.mems.subset_of(root.mems_))
      return Status::Error(EINVAL, "cpuset.mems: nodes " + t.mems.minus(root.mems_).to_string() +
                                       " are not available");
  }
  if (t.mems == cur.mems_) return Status::Ok();
  if (Status st = self.validate_change_locked(engine, cur, t); !st.ok()) return st;
  self.apply_locked(engine, cur, t);
  return Status::Ok();
}

template <uint32_t F>
Result<std::string> CpusetController::read_flag(Engine&, Css& css) {
  return std::string(cs(css).has(F) ? "1\n" : "0\n");
}

size_t CpusetController::cpus_max_write(const Controller& c) {
  return 100 + 6 * size_t{static_cast<const CpusetController&>(c).nr_cpus_config_};
}

size_t CpusetController::mems_max_write(const Controller& c) {
  return 100 + 6 * size_t{static_cast<const CpusetController&>(c).max_numnodes_};
}

template <uint32_t F>
Status CpusetController::write_flag(Engine& engine, Css& css, std::string_view text) {
  engine.cgroup_mutex().AssertHeld();
  Result<uint64_t> v = kstrtoull(text);
  if (!v.ok()) return bad_number(v, "flag", text);
  if (!css.online()) return Status::Error(ENODEV, "cpuset: the cgroup was removed");
  CpusetController& self = of(css);
  CpusetCss& cur = cs(css);
  // The kernel hands the u64 on as an int: only the low 32 bits decide
  // (4294967296 clears the flag, 4294967297 sets it).
  const bool on = static_cast<uint32_t>(*v) != 0;
  Trial t{cur.cpus_, cur.mems_, on ? cur.flags_ | F : cur.flags_ & ~F};
  if (Status st = self.validate_change_locked(engine, cur, t); !st.ok()) return st;
  self.apply_locked(engine, cur, t);
  return Status::Ok();
}

template Result<std::string> CpusetController::read_flag<CpusetCss::kCpuExclusive>(Engine&, Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kMemExclusive>(Engine&, Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kMemHardwall>(Engine&, Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kMemoryMigrate>(Engine&, Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kSchedLoadBalance>(Engine&,
                                                                                      Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kSpreadPage>(Engine&, Css&);
template Result<std::string> CpusetController::read_flag<CpusetCss::kSpreadSlab>(Engine&, Css&);
template Status CpusetController::write_flag<CpusetCss::kCpuExclusive>(Engine&, Css&,
                                                                      std::string_view);
template Status CpusetController::write_flag<CpusetCss::kMemExclusive>(Engine&, Css&,
                                                                      std::string_view);
template Status CpusetController::write_flag<CpusetCss::kMemHardwall>(Engine&, Css&,
                                                                     std::string_view);
template Status CpusetController::write_flag<CpusetCss::kMemoryMigrate>(Engine&, Css&,
                                                                       std::string_view);
template Status CpusetController::write_flag<CpusetCss::kSchedLoadBalance>(Engine&, Css&,
                                                                          std::string_view);
template Status CpusetController::write_flag<CpusetCss::kSpreadPage>(Engine&, Css&,
                                                                    std::string_view);
template Status CpusetController::write_flag<CpusetCss::kSpreadSlab>(Engine&, Css&,
                                                                    std::string_view);

Result<std::string> CpusetController::read_relax(Engine&, Css& css) {
  return std::to_string(cs(css).relax_domain_level_) + "\n";
}

Status CpusetController::write_relax(Engine& engine, Css& css, std::string_view text) {
  engine.cgroup_mutex().AssertHeld();
  Result<int64_t> v = kstrtoll(text);
  if (!v.ok())
    return Status::Error(v.err(), "cpuset.sched_relax_domain_level: '" +
                                      std::string(strstrip(text)) + "': " +
                                      v.status().message());
  if (!css.online()) return Status::Error(ENODEV, "cpuset: the cgroup was removed");
  const CpusetController& self = of(css);
  if (*v < -1 || *v > self.max_relax_domain_level_)
    return Status::Error(EINVAL, "cpuset.sched_relax_domain_level: " + std::to_string(*v) +
                                     " is outside -1.." +
                                     std::to_string(self.max_relax_domain_level_));
  cs(css).relax_domain_level_ = static_cast<int>(*v);
  return Status::Ok();
}

Result<std::string> CpusetController::read_memory_pressure(Engine&, Css&) {
  // The kernel's per-cpuset reclaim-rate meter; this model reclaims nothing.
  return std::string("0\n");
}

Result<std::string> CpusetController::read_pressure_enabled(Engine&, Css& css) {
  return std::string(of(css).memory_pressure_enabled_.load() ? "1\n" : "0\n");
}

Status CpusetController::write_pressure_enabled(Engine&, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text);
  if (!v.ok()) return bad_number(v, "memory_pressure_enabled", text);
  of(css).memory_pressure_enabled_.store(*v != 0);
  return Status::Ok();
}

}  // namespace cgcore
