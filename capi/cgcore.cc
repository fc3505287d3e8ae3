// The C API (cgcore.h) over cgcore::Engine and fs::CgroupFs.
//
// Every entry point is noexcept in effect: guarded() turns a C++ exception
// (an allocation failure inside the engine's containers) into -ENOMEM /
// -EIO, so that nothing unwinds into C. Each one clears the calling thread's
// last error on entry and records the Status message on failure.
#include "cgcore.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgcore/version.h"
#include "controllers/registry.h"
#include "core/engine.h"
#include "fs/cgroupfs.h"

struct cgcore_engine {
  cgcore::Engine engine;
  // cgcore_fs handles over this engine, which borrow it: destroying the
  // engine under one is refused.
  std::atomic<int> nr_fs{0};
};

struct cgcore_fs {
  cgcore_engine* owner;
  std::unique_ptr<cgcore::fs::CgroupFs> fs;
};

namespace {

using cgcore::Cgroup;
using cgcore::CgroupPtr;
using cgcore::Engine;
using cgcore::Hierarchy;
using cgcore::Pid;
using cgcore::Result;
using cgcore::Status;

// The message of this thread's last failed call (cgcore_last_error).
thread_local std::string t_last_error;

int fail(int err, std::string_view message) noexcept {
  try {
    t_last_error.assign(message);
  } catch (...) {
    t_last_error.clear();  // the errno alone still says what failed
  }
  return -err;
}
int fail(const Status& status) noexcept { return fail(status.err(), status.message()); }
int check(const Status& status) noexcept { return status.ok() ? 0 : fail(status); }

// Runs one entry point's body, keeping exceptions on this side.
template <typename Fn>
int guarded(Fn&& fn) noexcept {
  t_last_error.clear();
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return fail(ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(EIO, e.what());
  } catch (...) {
    return fail(EIO, "unexpected exception");
  }
}

// Reads a caller's size-versioned struct (rule 4 of cgcore.h) into `out`,
// which starts as the defaults (zeros): the members the caller's `size`
// covers are copied; bytes beyond what this library knows must be zero.
template <typename T>
int read_sized(const T* in, T& out) {
  out = T{};
  out.size = sizeof(T);
  if (!in) return 0;
  if (in->size < sizeof(size_t)) return fail(EINVAL, "struct size smaller than its size member");
  std::memcpy(&out, in, std::min(in->size, sizeof(T)));
  out.size = sizeof(T);
  const auto* bytes = reinterpret_cast<const unsigned char*>(in);
  for (size_t i = sizeof(T); i < in->size; ++i)
    if (bytes[i] != 0) return fail(E2BIG, "struct has members this library does not know");
  return 0;
}

// A copy of `s` in memory from malloc, for the caller to cgcore_free.
char* dup_string(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// The hierarchy with this id, or null. Hierarchies are kept as objects until
// the engine goes (dead cgroups point at them), so the pointer stays valid
// even if another thread unmounts it; operations on its cgroups then fail
// with ENOENT / ENODEV.
Hierarchy* find_hierarchy(Engine& engine, int id) {
  for (Hierarchy* h : engine.hierarchies())
    if (h->id() == id) return h;
  return nullptr;
}

// The path's components ("/a//b/" -> a, b). EINVAL for "." or "..", which a
// cgroup path in the C API never needs.
Result<std::vector<std::string_view>> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(pos, end - pos);
    if (comp == "." || comp == "..")
      return Status::Error(EINVAL, "'.' and '..' are not allowed in a cgroup path");
    if (!comp.empty()) parts.push_back(comp);
    pos = end + 1;
  }
  return parts;
}

// The cgroup `parts` names below the root of hierarchy `hid`. ENOENT for no
// such hierarchy or cgroup.
Result<CgroupPtr> resolve(Engine& engine, int hid, const std::vector<std::string_view>& parts,
                          size_t depth) {
  Hierarchy* h = find_hierarchy(engine, hid);
  if (!h) return Status::Error(ENOENT, "no hierarchy with id " + std::to_string(hid));
  CgroupPtr cur(&h->root());
  for (size_t i = 0; i < depth; ++i) {
    CgroupPtr next = engine.find_child(*cur, parts[i]);
    if (!next) return Status::Error(ENOENT, "no cgroup " + std::string(parts[i]));
    cur = std::move(next);
  }
  return cur;
}

Result<CgroupPtr> resolve(Engine& engine, int hid, const char* path) {
  if (!path) return Status::Error(EINVAL, "null path");
  Result<std::vector<std::string_view>> parts = split_path(path);
  if (!parts.ok()) return parts.status();
  return resolve(engine, hid, *parts, parts->size());
}

cgcore::fs::Caller to_caller(const cgcore_caller& c) {
  cgcore::fs::Caller caller;
  caller.uid = c.uid;
  caller.gid = c.gid;
  caller.pid = c.pid;
  return caller;
}

// The caller a file operation runs as: root with pid 0 for null. EINVAL for
// flags this library does not define.
Result<cgcore::fs::Caller> read_caller(const cgcore_caller* in) {
  cgcore_caller c;
  if (int rc = read_sized(in, c)) return Status::Error(-rc, t_last_error);
  if (c.flags != 0) return Status::Error(EINVAL, "unknown caller flags");
  return to_caller(c);
}


// Splits an absolute fs path into its directory and last name
// ("/pids/web/" -> "/pids", "web"). EINVAL for the mount root or a relative
// path.
Status split_last(std::string_view path, std::string& dir, std::string& name) {
  if (path.empty() || path[0] != '/') return Status::Error(EINVAL, "paths are absolute");
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  name = std::string(path.substr(slash + 1));
  if (name.empty()) return Status::Error(EINVAL, "the mount root has no name");
  dir = slash == 0 ? std::string("/") : std::string(path.substr(0, slash));
  return Status::Ok();
}

}  // namespace

extern "C" {

const char* cgcore_version(void) { return CGCORE_VERSION_STRING; }

int cgcore_version_number(void) { return CGCORE_VERSION_NUMBER; }

const char* cgcore_strerror(int err) { return cgcore::errno_name(err < 0 ? -err : err); }

const char* cgcore_last_error(void) { return t_last_error.c_str(); }

void cgcore_free(void* ptr) { std::free(ptr); }

// ------------------------------------------------------------------ engine

int cgcore_engine_create(const cgcore_engine_options* options, cgcore_engine** out) {
  return guarded([&] {
    if (!out) return fail(EINVAL, "null out");
    cgcore_engine_options opts;
    if (int rc = read_sized(options, opts)) return rc;
    cgcore::BuiltinOptions builtin;
    if (opts.nr_cpus > 0)
      builtin.cpuset_topology =
          cgcore::CpusetTopology::uniform(opts.nr_cpus, opts.nr_nodes > 0 ? opts.nr_nodes : 1);
    else if (opts.nr_nodes > 0)
      return fail(EINVAL, "nr_nodes without nr_cpus");
    auto e = std::make_unique<cgcore_engine>();
    if (auto r = cgcore::register_builtin_controllers(e->engine, std::move(builtin)); !r.ok())
      return fail(r.status());
    *out = e.release();
    return 0;
  });
}

int cgcore_engine_destroy(cgcore_engine* engine) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    if (int n = engine->nr_fs.load(); n > 0)
      return fail(EBUSY, std::to_string(n) + " fs handle(s) still use this engine");
    delete engine;
    return 0;
  });
}

// ------------------------------------------------------------ hierarchies

int cgcore_mount(cgcore_engine* engine, const char* controllers, const char* name, int* id) {
  return guarded([&] {
    if (!engine || !controllers || !id) return fail(EINVAL, "null argument");
    std::vector<std::string> names;
    std::string_view list = controllers;
    while (!list.empty()) {
      size_t comma = list.find(',');
      names.emplace_back(list.substr(0, comma));
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
      if (list.empty()) names.emplace_back();  // "a," names an empty controller: EINVAL
    }
    Result<Hierarchy*> h = engine->engine.mount(names, name ? name : "");
    if (!h.ok()) return fail(h.status());
    *id = (*h)->id();
    return 0;
  });
}

int cgcore_umount(cgcore_engine* engine, int id) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Hierarchy* h = find_hierarchy(engine->engine, id);
    if (!h) return fail(ENOENT, "no hierarchy with id " + std::to_string(id));
    return check(engine->engine.destroy_hierarchy(*h));
  });
}

// ------------------------------------------------------------------ cgroups

int cgcore_mkdir(cgcore_engine* engine, int hierarchy, const char* path, uint64_t* cgroup_id) {
  return guarded([&] {
    if (!engine || !path) return fail(EINVAL, "null argument");
    Result<std::vector<std::string_view>> parts = split_path(path);
    if (!parts.ok()) return fail(parts.status());
    if (parts->empty()) {
      if (!find_hierarchy(engine->engine, hierarchy))
        return fail(ENOENT, "no hierarchy with id " + std::to_string(hierarchy));
      return fail(EEXIST, "the root cgroup exists");
    }
    Result<CgroupPtr> parent = resolve(engine->engine, hierarchy, *parts, parts->size() - 1);
    if (!parent.ok()) return fail(parent.status());
    Result<CgroupPtr> cg = engine->engine.mkdir(**parent, parts->back());
    if (!cg.ok()) return fail(cg.status());
    if (cgroup_id) *cgroup_id = (*cg)->id();
    return 0;
  });
}

int cgcore_rmdir(cgcore_engine* engine, int hierarchy, const char* path) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Result<CgroupPtr> cg = resolve(engine->engine, hierarchy, path);
    if (!cg.ok()) return fail(cg.status());
    return check(engine->engine.rmdir(**cg));
  });
}

int cgcore_rename(cgcore_engine* engine, int hierarchy, const char* path, const char* new_name) {
  return guarded([&] {
    if (!engine || !new_name) return fail(EINVAL, "null argument");
    Result<CgroupPtr> cg = resolve(engine->engine, hierarchy, path);
    if (!cg.ok()) return fail(cg.status());
    return check(engine->engine.rename(**cg, new_name));
  });
}

int cgcore_cgroup_tasks(cgcore_engine* engine, int hierarchy, const char* path, unsigned flags,
                        cgcore_pid** pids, size_t* count) {
  return guarded([&] {
    if (!engine || !pids || !count) return fail(EINVAL, "null argument");
    if (flags & ~CGCORE_TASKS_THREADS) return fail(EINVAL, "unknown flags");
    Result<CgroupPtr> cg = resolve(engine->engine, hierarchy, path);
    if (!cg.ok()) return fail(cg.status());
    std::vector<Pid> ids = (flags & CGCORE_TASKS_THREADS) ? engine->engine.cgroup_tids(**cg)
                                                          : engine->engine.cgroup_tgids(**cg);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    cgcore_pid* array = nullptr;
    if (!ids.empty()) {
      array = static_cast<cgcore_pid*>(std::malloc(ids.size() * sizeof(cgcore_pid)));
      if (!array) return fail(ENOMEM, "out of memory");
      std::copy(ids.begin(), ids.end(), array);
    }
    *pids = array;
    *count = ids.size();
    return 0;
  });
}

// ------------------------------------------------------------------ tasks

int cgcore_spawn(cgcore_engine* engine, cgcore_pid pid, cgcore_pid* out) {
  return guarded([&] {
    if (!engine || !out) return fail(EINVAL, "null argument");
    if (pid < 0) return fail(EINVAL, "negative pid");
    cgcore::SpawnOptions opts;
    if (pid > 0) opts.pid = pid;
    Result<Pid> r = engine->engine.spawn(opts);
    if (!r.ok()) return fail(r.status());
    *out = *r;
    return 0;
  });
}

int cgcore_fork(cgcore_engine* engine, cgcore_pid parent, cgcore_pid child, unsigned flags,
                cgcore_pid* out) {
  return guarded([&] {
    if (!engine || !out) return fail(EINVAL, "null argument");
    if (flags & ~CGCORE_FORK_SHARE_MM) return fail(EINVAL, "unknown flags");
    if (child < 0) return fail(EINVAL, "negative pid");
    cgcore::ForkOptions opts;
    if (child > 0) opts.pid = child;
    opts.share_mm = (flags & CGCORE_FORK_SHARE_MM) != 0;
    Result<Pid> r = engine->engine.fork(parent, opts);
    if (!r.ok()) return fail(r.status());
    *out = *r;
    return 0;
  });
}

int cgcore_clone_thread(cgcore_engine* engine, cgcore_pid tid, cgcore_pid new_tid,
                        cgcore_pid* out) {
  return guarded([&] {
    if (!engine || !out) return fail(EINVAL, "null argument");
    if (new_tid < 0) return fail(EINVAL, "negative pid");
    std::optional<Pid> id;
    if (new_tid > 0) id = new_tid;
    Result<Pid> r = engine->engine.clone_thread(tid, id);
    if (!r.ok()) return fail(r.status());
    *out = *r;
    return 0;
  });
}

int cgcore_exit_thread(cgcore_engine* engine, cgcore_pid tid) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    return check(engine->engine.exit_thread(tid));
  });
}

int cgcore_exit_process(cgcore_engine* engine, cgcore_pid tgid) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    return check(engine->engine.exit_process(tgid));
  });
}

int cgcore_exec(cgcore_engine* engine, cgcore_pid tid) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    return check(engine->engine.exec(tid));
  });
}

int cgcore_set_creds(cgcore_engine* engine, cgcore_pid tgid, uint32_t uid, uint32_t gid) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    cgcore::Creds creds{.uid = uid, .euid = uid, .suid = uid, .gid = gid, .egid = gid};
    return check(engine->engine.set_creds(tgid, creds));
  });
}

int cgcore_task_cgroup(cgcore_engine* engine, cgcore_pid tid, int hierarchy, char** path) {
  return guarded([&] {
    if (!engine || !path) return fail(EINVAL, "null argument");
    Hierarchy* h = find_hierarchy(engine->engine, hierarchy);
    if (!h) return fail(ENOENT, "no hierarchy with id " + std::to_string(hierarchy));
    Result<CgroupPtr> cg = engine->engine.task_cgroup(tid, *h);
    if (!cg.ok()) return fail(cg.status());
    std::string p;
    {
      cgcore::MutexLock lock(engine->engine.cgroup_mutex());  // names are guarded by it
      p = (*cg)->path();
    }
    *path = dup_string(p);
    return 0;
  });
}

// ------------------------------------------------------------------ migration

int cgcore_migrate_thread(cgcore_engine* engine, cgcore_pid tid, int hierarchy, const char* path) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Result<CgroupPtr> dst = resolve(engine->engine, hierarchy, path);
    if (!dst.ok()) return fail(dst.status());
    return check(engine->engine.migrate_thread(tid, **dst));
  });
}

int cgcore_migrate_process(cgcore_engine* engine, cgcore_pid pid, int hierarchy,
                           const char* path) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Result<CgroupPtr> dst = resolve(engine->engine, hierarchy, path);
    if (!dst.ok()) return fail(dst.status());
    return check(engine->engine.migrate_process(pid, **dst));
  });
}

int cgcore_migrate_processes(cgcore_engine* engine, const cgcore_pid* pids, size_t count,
                             int hierarchy, const char* path) {
  return guarded([&] {
    if (!engine || (!pids && count > 0)) return fail(EINVAL, "null argument");
    Result<CgroupPtr> dst = resolve(engine->engine, hierarchy, path);
    if (!dst.ok()) return fail(dst.status());
    return check(engine->engine.migrate_processes(std::span<const Pid>(pids, count), **dst));
  });
}

int cgcore_transfer(cgcore_engine* engine, int hierarchy, const char* from, const char* to) {
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Result<CgroupPtr> src = resolve(engine->engine, hierarchy, from);
    if (!src.ok()) return fail(src.status());
    Result<CgroupPtr> dst = resolve(engine->engine, hierarchy, to);
    if (!dst.ok()) return fail(dst.status());
    return check(engine->engine.transfer(**src, **dst));
  });
}

// ------------------------------------------------------------------ checking

int cgcore_check_invariants(cgcore_engine* engine, char** message) {
  if (message) *message = nullptr;
  return guarded([&] {
    if (!engine) return fail(EINVAL, "null engine");
    Status s = engine->engine.check_invariants();
    if (s.ok()) return 0;
    if (message) *message = dup_string(s.message());
    return fail(EIO, s.message());
  });
}

// ------------------------------------------------------------------ files

int cgcore_fs_create(cgcore_engine* engine, const char* layout, cgcore_fs** out) {
  return guarded([&] {
    if (!engine || !layout || !out) return fail(EINVAL, "null argument");
    auto handle = std::make_unique<cgcore_fs>();
    handle->owner = engine;
    Result<std::unique_ptr<cgcore::fs::CgroupFs>> fs =
        cgcore::fs::CgroupFs::create(engine->engine, layout);
    if (!fs.ok()) return fail(fs.status());
    handle->fs = std::move(*fs);
    engine->nr_fs.fetch_add(1);
    *out = handle.release();
    return 0;
  });
}

void cgcore_fs_destroy(cgcore_fs* fs) {
  if (!fs) return;
  cgcore_engine* owner = fs->owner;
  delete fs;  // unregisters from the engine before the count lets it go
  owner->nr_fs.fetch_sub(1);
}

int cgcore_fs_read(cgcore_fs* fs, const char* path, const cgcore_caller* caller, char** data,
                   size_t* size) {
  return guarded([&] {
    if (!fs || !path || !data) return fail(EINVAL, "null argument");
    Result<cgcore::fs::Caller> c = read_caller(caller);
    if (!c.ok()) return fail(c.status());
    Result<std::string> text = fs->fs->read_path(path, *c);
    if (!text.ok()) return fail(text.status());
    *data = dup_string(*text);
    if (size) *size = text->size();
    return 0;
  });
}

int cgcore_fs_write(cgcore_fs* fs, const char* path, const char* data, size_t size,
                    const cgcore_caller* caller) {
  return guarded([&] {
    if (!fs || !path || (!data && size > 0)) return fail(EINVAL, "null argument");
    Result<cgcore::fs::Caller> c = read_caller(caller);
    if (!c.ok()) return fail(c.status());
    return check(fs->fs->write_path(path, std::string_view(data ? data : "", size), *c));
  });
}

int cgcore_fs_mkdir(cgcore_fs* fs, const char* path, uint32_t mode, const cgcore_caller* caller) {
  return guarded([&] {
    if (!fs || !path) return fail(EINVAL, "null argument");
    Result<cgcore::fs::Caller> c = read_caller(caller);
    if (!c.ok()) return fail(c.status());
    std::string dir, name;
    if (Status s = split_last(path, dir, name); !s.ok()) return fail(s);
    Result<cgcore::fs::Ino> ino = fs->fs->resolve(dir);
    if (!ino.ok()) return fail(ino.status());
    Result<cgcore::fs::Attr> attr = fs->fs->mkdir(*ino, name, mode, *c);
    return attr.ok() ? 0 : fail(attr.status());
  });
}

int cgcore_fs_rmdir(cgcore_fs* fs, const char* path, const cgcore_caller* caller) {
  return guarded([&] {
    if (!fs || !path) return fail(EINVAL, "null argument");
    Result<cgcore::fs::Caller> c = read_caller(caller);
    if (!c.ok()) return fail(c.status());
    std::string dir, name;
    if (Status s = split_last(path, dir, name); !s.ok()) return fail(s);
    Result<cgcore::fs::Ino> ino = fs->fs->resolve(dir);
    if (!ino.ok()) return fail(ino.status());
    return check(fs->fs->rmdir(*ino, name, *c));
  });
}

}  // extern "C"
