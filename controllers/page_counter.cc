#include "controllers/page_counter.h"

#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "core/cgroup.h"
#include "core/parse.h"

namespace cgcore {

namespace {

[[noreturn]] void accounting_bug(const char* what, int64_t a, int64_t b) {
  std::fprintf(stderr, "cgcore: page counter: %s (%lld, %lld)\n", what, static_cast<long long>(a),
               static_cast<long long>(b));
  std::abort();
}

std::string css_name(const ChargeCss& css) {
  const Cgroup* cg = css.cgroup();
  std::string name = cg ? cg->path() : std::string("?");
  if (!css.online()) name += " (offline)";
  return name;
}

}  // namespace

// ------------------------------------------------------------ PageCounter

namespace {
void raise_to(std::atomic<int64_t>& watermark, int64_t now) {
  int64_t w = watermark.load();
  while (now > w && !watermark.compare_exchange_weak(w, now)) {
  }
}
}  // namespace

void PageCounter::raise_watermark(const PageCounter* stop) {
  for (PageCounter* c = this; c != stop; c = c->parent_) raise_to(c->watermark_, c->usage_.load());
}

PageCounter* PageCounter::try_charge(int64_t bytes, const PageCounter* stop, bool raise_watermark) {
  for (PageCounter* c = this; c != stop; c = c->parent_) {
    int64_t u = c->usage_.load();
    bool ok = true;
    for (;;) {
      // limit - u may be negative (over a forced limit); bytes >= 0.
      if (bytes > c->limit_.load() - u) {
        ok = false;
        break;
      }
      if (c->usage_.compare_exchange_weak(u, u + bytes)) break;
    }
    // A set_limit that slipped in between the check and the exchange saw
    // the old usage; looking at the limit again after our exchange closes
    // that window (set_limit looks at the usage again after its exchange).
    if (ok && u + bytes > c->limit_.load()) {
      c->usage_.fetch_sub(bytes);
      ok = false;
    }
    if (!ok) {
      c->failcnt_.fetch_add(1);
      for (PageCounter* d = this; d != c; d = d->parent_) d->usage_.fetch_sub(bytes);
      return c;
    }
    if (raise_watermark) raise_to(c->watermark_, u + bytes);
  }
  return nullptr;
}

void PageCounter::force_charge(int64_t bytes) {
  for (PageCounter* c = this; c; c = c->parent_) raise_to(c->watermark_, c->usage_.fetch_add(bytes) + bytes);
}

void PageCounter::uncharge(int64_t bytes, const PageCounter* stop) {
  for (PageCounter* c = this; c != stop; c = c->parent_) {
    const int64_t old = c->usage_.fetch_sub(bytes);
    if (old < bytes) accounting_bug("uncharging more than is charged", old, bytes);
  }
}

Status PageCounter::set_limit(int64_t bytes) {
  if (usage_.load() > bytes)
    return Status::Error(EBUSY, "usage " + std::to_string(usage_.load()) +
                                    " is above the new limit " + std::to_string(bytes));
  const int64_t old = limit_.exchange(bytes);
  // A charge that read the old limit and landed after our first look.
  if (bytes >= old || usage_.load() <= bytes) return Status::Ok();
  limit_.store(old);
  return Status::Error(EBUSY, "usage rose above the new limit " + std::to_string(bytes));
}

const PageCounter* PageCounter::common_ancestor(const PageCounter* a, const PageCounter* b) {
  auto depth = [](const PageCounter* c) {
    int d = 0;
    for (; c; c = c->parent_) ++d;
    return d;
  };
  int da = depth(a), db = depth(b);
  for (; da > db; --da) a = a->parent_;
  for (; db > da; --db) b = b->parent_;
  while (a != b) {
    a = a->parent_;
    b = b->parent_;
  }
  return a;
}

// ------------------------------------------------------------ ChargeCss

ChargeCss::ChargeCss(ChargeCss* parent, CssRegistry& registry)
    : counter(parent ? &parent->counter : nullptr), up_(parent), registry_(registry) {
  MutexLock lock(registry_.mu_);
  registry_.csses_.push_back(*this);
}

ChargeCss::~ChargeCss() {
  MutexLock lock(registry_.mu_);
  registry_node_.unlink();
}

bool CssRegistry::contains(const ChargeCss* css) const {
  MutexLock lock(mu_);
  for (const ChargeCss& c : csses_)
    if (&c == css) return true;
  return false;
}

Status CssRegistry::check(const std::unordered_map<const ChargeCss*, int64_t>& local_want) const {
  static constexpr ChargeView kCounter{
      [](const ChargeCss& c) -> const PageCounter& { return c.counter; },
      [](const ChargeCss& c) { return c.local.load(); }, ""};
  return check(local_want, kCounter);
}

Status CssRegistry::check(const std::unordered_map<const ChargeCss*, int64_t>& local_want,
                          const ChargeView& view) const {
  MutexLock lock(mu_);
  std::unordered_map<const ChargeCss*, int64_t> children_usage;
  size_t nr_known = 0;
  for (const ChargeCss& c : csses_) {
    if (c.up()) children_usage[c.up()] += view.counter(c).usage();
    if (local_want.count(&c)) ++nr_known;
  }
  if (nr_known != local_want.size())
    return Status::Error(EIO, "an address space charges a css that no longer exists");
  for (const ChargeCss& c : csses_) {
    const PageCounter& counter = view.counter(c);
    const int64_t usage = counter.usage();
    const int64_t local = view.local(c);
    auto ch = children_usage.find(&c);
    const int64_t children = ch == children_usage.end() ? 0 : ch->second;
    auto w = local_want.find(&c);
    const int64_t want = w == local_want.end() ? 0 : w->second;
    const std::string name = css_name(c) + ": " + std::string(view.what);
    if (local < 0) return Status::Error(EIO, name + "negative local charge");
    if (usage != local + children)
      return Status::Error(EIO, name + "usage " + std::to_string(usage) + " != local " +
                                    std::to_string(local) + " + children " +
                                    std::to_string(children));
    if (local != want)
      return Status::Error(EIO, name + "local charge " + std::to_string(local) +
                                    ", but address spaces hold " + std::to_string(want));
    if (counter.watermark() < usage) return Status::Error(EIO, name + "watermark below usage");
    if (counter.failcnt() < 0) return Status::Error(EIO, name + "negative failcnt");
  }
  return Status::Ok();
}

// ------------------------------------------------------------ parsing

Result<int64_t> parse_memory_size(std::string_view text, std::string_view unlimited_word) {
  const std::string_view s = strstrip(text);
  if (s == unlimited_word) return kUnlimited;
  const Prefix size = memparse(s);
  if (size.used != s.size())
    return Status::Error(EINVAL, "invalid memory size '" + std::string(s) + "'");
  const uint64_t pages = size.value / kPageSize;
  const uint64_t max_pages = static_cast<uint64_t>(kUnlimited / kPageSize);
  return static_cast<int64_t>((pages < max_pages ? pages : max_pages) * kPageSize);
}

Result<uint64_t> parse_u64(std::string_view text) {
  Result<uint64_t> v = kstrtoull(text);
  if (!v.ok() && v.err() == EINVAL)
    return Status::Error(EINVAL, "invalid number '" + std::string(strstrip(text)) + "'");
  return v;
}

std::string format_line(int64_t value) { return std::to_string(value) + "\n"; }

Result<int64_t> page_round_up(int64_t bytes) {
  if (bytes < 0) return Status::Error(EINVAL, "negative size " + std::to_string(bytes));
  if (bytes > kUnlimited) return Status::Error(ENOMEM, "size beyond any limit");
  return (bytes + kPageSize - 1) / kPageSize * kPageSize;
}

namespace {
// Only the charge controllers' file tables name these handlers.
ChargeCss& charge_css(Css& css) { return static_cast<ChargeCss&>(css); }
}  // namespace

Result<std::string> read_charge_limit(Engine&, Css& css) {
  return format_line(charge_css(css).counter.limit());
}

Status write_charge_limit(Engine&, Css& css, std::string_view text) {
  Result<int64_t> bytes = parse_memory_size(text, "-1");
  if (!bytes.ok()) return bytes.status();
  if (css.is_root()) return Status::Error(EINVAL, "the root cgroup's limit cannot be set");
  return charge_css(css).counter.set_limit(*bytes);
}

Result<std::string> read_charge_usage(Engine&, Css& css) {
  return format_line(charge_css(css).counter.usage());
}

Result<std::string> read_charge_watermark(Engine&, Css& css) {
  return format_line(charge_css(css).counter.watermark());
}

Status write_charge_watermark(Engine&, Css& css, std::string_view) {
  charge_css(css).counter.reset_watermark();
  return Status::Ok();
}

Result<std::string> read_charge_failcnt(Engine&, Css& css) {
  return format_line(charge_css(css).counter.failcnt());
}

Status write_charge_failcnt(Engine&, Css& css, std::string_view) {
  charge_css(css).counter.reset_failcnt();
  return Status::Ok();
}

}  // namespace cgcore
