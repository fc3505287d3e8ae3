/* <cgcore/cgcore.h>: the C API of cgcore, the Linux cgroup core in user
 * space. One engine holds hierarchies of cgroups, the built-in controllers
 * (cpuset, cpu, cpuacct, memory, pids, numtasks, memrlimit) and virtual
 * tasks; a cgcore_fs serves the cgroupfs files over it, with the kernel's
 * formats and errnos.
 *
 *   cgcore_engine *e;
 *   cgcore_pid pid;
 *   int hid;
 *   cgcore_engine_create(NULL, &e);
 *   cgcore_mount(e, "pids", NULL, &hid);            // a v1 hierarchy
 *   cgcore_mkdir(e, hid, "/web", NULL);
 *   cgcore_spawn(e, 0, &pid);                       // a virtual process
 *   cgcore_migrate_process(e, pid, hid, "/web");    // one transaction
 *   cgcore_check_invariants(e, NULL);
 *   cgcore_engine_destroy(e);
 *
 * Linked as -lcgcore_capi (pkg-config cgcore-capi; CMake cgcore::capi or
 * cgcore::capi_static). The shared library carries the engine inside it and
 * exports only the cgcore_* functions below.
 *
 * ------------------------------------------------------------------ errors
 *
 * Every function returning int returns 0 on success or a negative errno
 * (-EBUSY, -EINVAL, ...), as the kernel's cgroup code returns them; a call
 * that fails changes nothing (a migration of many tasks is all or nothing).
 * Results come back through out-parameters, which are written only on
 * success (but for cgcore_check_invariants's message, which says why it
 * failed). A null handle or a null required pointer gives -EINVAL. The
 * message of the last failure on the calling thread is cgcore_last_error().
 *
 * ------------------------------------------------------------ thread safety
 *
 * Every function may be called from any thread at the same time on the same
 * engine and fs, as the engine's own methods may: each takes the engine's
 * locks it needs and returns with none held. The exceptions are the
 * lifetimes: cgcore_engine_destroy and cgcore_fs_destroy must be the last
 * call on their handle, and an fs is created and destroyed while no other
 * thread uses its engine (it registers itself with the engine then).
 * Nothing here calls back into the caller.
 *
 * ------------------------------------------------------------ the ABI rules
 *
 * 1. The shared library's SONAME is libcgcore_capi.so.0 for every 0.x
 *    release, and its symbols are versioned (CGCORE_0). Between 0.x
 *    releases functions, flags and error conditions may be added; none is
 *    removed, and no signature or documented meaning changes. A program
 *    built against 0.a runs against any 0.b with b >= a. An incompatible
 *    change would be 1.0, with SONAME libcgcore_capi.so.1.
 * 2. Nothing of C++ crosses this boundary: no C++ types, and no exception
 *    escapes (an allocation failure inside is -ENOMEM).
 * 3. Handles are opaque (only pointers to them are seen); their layout may
 *    change in any release.
 * 4. No struct is passed by value. The structs that are passed by pointer
 *    are size-versioned: their first member is `size_t size`, which the
 *    caller sets to sizeof the struct it was compiled with, after zeroing
 *    the whole struct (memset, or `= {0}`). Later releases add members only
 *    at the end; the library reads `size` bytes, takes a member beyond them
 *    as zero (its default), and refuses with -E2BIG a larger struct whose
 *    bytes it does not know are not all zero. The structs have no implicit
 *    padding (a member that would leave a hole is a reserved one instead),
 *    so that a later member never lands in an older caller's padding.
 * 5. Flags arguments: bits not defined here must be zero (-EINVAL), so that
 *    later releases can give them a meaning.
 * 6. Memory: a string or array returned through an out-parameter is
 *    allocated by the library and is the caller's, to be freed with
 *    cgcore_free(), never with another allocator's free. The `const char *`
 *    return values (cgcore_version, cgcore_strerror, cgcore_last_error) are
 *    the library's and are never freed.
 * 7. Error values are negative errnos of the C library the program runs
 *    with (Linux); a caller must treat any negative value it does not know
 *    as a failure.
 *
 * The C++ libraries (cgcore::core, cgcore::fs, ...) make no such promise:
 * their SONAMEs change with every 0.x minor release.
 *
 * -------------------------------------------------------------- naming cgroups
 *
 * A hierarchy is named by its id: 0 is the default (cgroup v2) hierarchy,
 * always present; cgcore_mount returns a v1 hierarchy's. A cgroup is named by
 * its path within its hierarchy: "/" is the root, "/a/b" a descendant
 * (empty components are skipped; "." and ".." are -EINVAL). The path is
 * resolved when the call starts, as a VFS resolves it: a concurrent rename
 * or rmdir by another thread decides which cgroup, if any, it finds.
 */
#ifndef CGCORE_CGCORE_H
#define CGCORE_CGCORE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CGCORE_API __attribute__((visibility("default")))
#else
#define CGCORE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A task (thread) id or process (thread-group) id, as in Linux. */
typedef int32_t cgcore_pid;

/* An engine: hierarchies, cgroups, the built-in controllers, tasks. */
typedef struct cgcore_engine cgcore_engine;
/* A cgroupfs view of an engine (one layout), with the kernel's file
 * semantics and permission checks. */
typedef struct cgcore_fs cgcore_fs;

/* ------------------------------------------------------------------ library */

/* The library's version, "MAJOR.MINOR.PATCH" (that of the library the program
 * runs with, which may be newer than <cgcore/version.h>'s). Static storage. */
CGCORE_API const char *cgcore_version(void);
/* The same as one number, MAJOR * 10000 + MINOR * 100 + PATCH. */
CGCORE_API int cgcore_version_number(void);
/* The symbolic name of an errno, given positive or negative ("EBUSY"), or
 * "E<number>" for one it does not know. Static storage. */
CGCORE_API const char *cgcore_strerror(int err);
/* The message of the last call on this thread that failed ("pids: fork
 * refused, a pids.max limit is reached"), or "" if the last call succeeded.
 * Valid until this thread's next call into the library. */
CGCORE_API const char *cgcore_last_error(void);
/* Frees a string or array the library returned through an out-parameter.
 * A null pointer is ignored. */
CGCORE_API void cgcore_free(void *ptr);

/* ------------------------------------------------------------------ engine */

/* How an engine is made (size-versioned; rule 4 above). */
struct cgcore_engine_options {
  size_t size;       /* sizeof(struct cgcore_engine_options) */
  uint32_t nr_cpus;  /* the CPUs cpuset sees, all online; 0: the host's CPUs and nodes */
  uint32_t nr_nodes; /* with nr_cpus: the memory nodes (0: one); alone: -EINVAL */
};

/* Makes an engine with the built-in controllers registered, every one bound
 * to the default hierarchy, and no task. `options` may be null (defaults).
 * Fails with -EINVAL (null `out`, bad size), -E2BIG (unknown nonzero
 * members), -ENOMEM. */
CGCORE_API int cgcore_engine_create(const struct cgcore_engine_options *options,
                                    cgcore_engine **out);
/* Destroys an engine and everything in it. -EBUSY (and nothing freed) while
 * an fs made over it exists; -EINVAL for null. Must be the last call on the
 * handle. */
CGCORE_API int cgcore_engine_destroy(cgcore_engine *engine);

/* ------------------------------------------------------------ hierarchies */

/* Mounts a v1 hierarchy with the comma-separated `controllers` ("cpuset,
 * memory"; may be "" with a name) and optional `name` (v1 "name=", null or ""
 * for none), as the kernel's v1 mount does, and stores its id in `*id`. The
 * same controllers (and name) give the existing hierarchy. -EBUSY if a
 * controller is bound to another v1 hierarchy or has cgroups in the default
 * one; -EINVAL for an unknown controller, a bad name, or neither; -ENOMEM. */
CGCORE_API int cgcore_mount(cgcore_engine *engine, const char *controllers, const char *name,
                            int *id);
/* Destroys v1 hierarchy `id`, giving its controllers back to the default
 * hierarchy. -EBUSY while it has child cgroups; -EINVAL for the default
 * hierarchy; -ENOENT for no such hierarchy. */
CGCORE_API int cgcore_umount(cgcore_engine *engine, int id);

/* ------------------------------------------------------------------ cgroups */

/* Creates the cgroup at `path` in hierarchy `hierarchy` (its parent must
 * exist) and stores its id (unique, never reused) in `*cgroup_id` if that is
 * not null. -ENOENT for no such hierarchy or parent; -EEXIST if taken (the
 * root too); -EINVAL for a bad name; -EAGAIN past a max.depth /
 * max.descendants limit; a controller's error. */
CGCORE_API int cgcore_mkdir(cgcore_engine *engine, int hierarchy, const char *path,
                            uint64_t *cgroup_id);
/* Removes the cgroup at `path`. -EBUSY while it has tasks or children, or for
 * a root; -ENOENT if there is none. */
CGCORE_API int cgcore_rmdir(cgcore_engine *engine, int hierarchy, const char *path);
/* Renames the cgroup at `path` to `new_name` (a name, not a path: it stays
 * under the same parent). -EEXIST if taken; -EINVAL for a bad name; -EBUSY for
 * a root; -ENOENT if there is none. */
CGCORE_API int cgcore_rename(cgcore_engine *engine, int hierarchy, const char *path,
                             const char *new_name);

/* What cgcore_cgroup_tasks lists. */
#define CGCORE_TASKS_THREADS 0x1u /* thread ids, not process ids */

/* The tasks of the cgroup at `path` (not of its descendants): its process
 * ids, each once, or with CGCORE_TASKS_THREADS its thread ids; sorted. On
 * success `*pids` is an array of `*count` ids to cgcore_free (null when
 * there are none). -ENOENT for no such cgroup; -EINVAL for unknown flags. */
CGCORE_API int cgcore_cgroup_tasks(cgcore_engine *engine, int hierarchy, const char *path,
                                   unsigned flags, cgcore_pid **pids, size_t *count);

/* ------------------------------------------------------------------ tasks */

/* Creates a process of one thread in the root cgroup of every hierarchy,
 * with id `pid` (0: the next free one) and root credentials, and stores its
 * id in `*out`. -EEXIST if the id is taken; -EINVAL if negative; a
 * controller's can_fork error. */
CGCORE_API int cgcore_spawn(cgcore_engine *engine, cgcore_pid pid, cgcore_pid *out);

/* cgcore_fork flags. */
#define CGCORE_FORK_SHARE_MM 0x1u /* CLONE_VM / vfork: share the parent's address space */

/* Forks a new process of one thread from thread `parent`, with id
 * `child` (0: the next free one); it starts in the parent's cgroups.
 * -ESRCH if the parent does not exist or is exiting; -EEXIST / -EINVAL for a
 * bad id or unknown flags; a controller's can_fork error (pids: -EAGAIN). */
CGCORE_API int cgcore_fork(cgcore_engine *engine, cgcore_pid parent, cgcore_pid child,
                           unsigned flags, cgcore_pid *out);
/* Creates a thread with id `new_tid` (0: the next free one) in the process of
 * thread `tid`, in `tid`'s cgroups. Errors as cgcore_fork. */
CGCORE_API int cgcore_clone_thread(cgcore_engine *engine, cgcore_pid tid, cgcore_pid new_tid,
                                   cgcore_pid *out);
/* Thread `tid` exits; its process ends with its last thread. -ESRCH if there
 * is no such thread. */
CGCORE_API int cgcore_exit_thread(cgcore_engine *engine, cgcore_pid tid);
/* Every thread of process `tgid` exits. -ESRCH if there is none. */
CGCORE_API int cgcore_exit_process(cgcore_engine *engine, cgcore_pid tgid);
/* Thread `tid` execs: the other threads of its process exit, it takes the
 * process id, and the process gets a new, empty address space. -ESRCH if
 * there is no such thread. */
CGCORE_API int cgcore_exec(cgcore_engine *engine, cgcore_pid tid);
/* Sets the real, effective and saved uid and gid of process `tgid` (what the
 * fs's permission checks on moving it compare). -ESRCH if there is none. */
CGCORE_API int cgcore_set_creds(cgcore_engine *engine, cgcore_pid tgid, uint32_t uid,
                                uint32_t gid);
/* The path of the cgroup of thread `tid` in hierarchy `hierarchy`, as a
 * string to cgcore_free. -ESRCH if there is no such thread; -ENOENT for no
 * such hierarchy. */
CGCORE_API int cgcore_task_cgroup(cgcore_engine *engine, cgcore_pid tid, int hierarchy,
                                  char **path);

/* ------------------------------------------------------------------ migration
 *
 * Each call is one transaction: every task moved and every controller
 * committed, or nothing changed. Errors: -ESRCH for no such task; -ENOENT
 * for no such hierarchy or cgroup; -ENODEV if the cgroup is removed
 * meanwhile; a controller's veto (e.g. -EAGAIN, -ENOSPC); -ENOMEM. A task
 * already there, or exiting, is left as it is. */

/* Moves thread `tid` to the cgroup at `path`. */
CGCORE_API int cgcore_migrate_thread(cgcore_engine *engine, cgcore_pid tid, int hierarchy,
                                     const char *path);
/* Moves every thread of the process of `pid`. */
CGCORE_API int cgcore_migrate_process(cgcore_engine *engine, cgcore_pid pid, int hierarchy,
                                      const char *path);
/* Moves every thread of each of the `count` processes in `pids`, all in one
 * transaction. */
CGCORE_API int cgcore_migrate_processes(cgcore_engine *engine, const cgcore_pid *pids,
                                        size_t count, int hierarchy, const char *path);
/* Moves every task of the cgroup at `from` (not of its descendants) to the
 * one at `to` in the same hierarchy. */
CGCORE_API int cgcore_transfer(cgcore_engine *engine, int hierarchy, const char *from,
                               const char *to);

/* ------------------------------------------------------------------ checking */

/* Validates every structural invariant of the engine (task lists, css_sets,
 * reference counts, counters, leaks). 0 if all hold; -EIO if one does not,
 * with its description in `*message` (a string to cgcore_free; `message` may
 * be null; it is set to null on success). */
CGCORE_API int cgcore_check_invariants(cgcore_engine *engine, char **message);

/* ------------------------------------------------------------------ files */

/* Who performs a file operation (size-versioned; rule 4 above). A null
 * caller is root with pid 0. Nonzero flags give -EINVAL. */
struct cgcore_caller {
  size_t size;  /* sizeof(struct cgcore_caller) */
  uint32_t uid; /* effective uid */
  uint32_t gid; /* effective gid */
  cgcore_pid pid; /* the caller's process: what "0" written to cgroup.procs means */
  uint32_t flags; /* none defined yet: zero */
};

/* Serves `layout` of `engine` as cgroupfs files over its virtual tasks:
 * "hybrid" (one v1 hierarchy per controller, each in a directory named after
 * it, and "unified" for the default hierarchy), "v2" (the default hierarchy
 * at the top), or a spec like "cpuset,memory;pids;name=systemd" (each
 * ';'-separated group one v1 hierarchy). Mounts the v1 hierarchies it needs
 * (the same controllers give the hierarchies cgcore_mount made). The engine
 * must outlive the fs. -EINVAL for a bad layout; cgcore_mount's errors. */
CGCORE_API int cgcore_fs_create(cgcore_engine *engine, const char *layout, cgcore_fs **out);
/* Destroys an fs (the hierarchies and cgroups stay in the engine). Must be
 * the last call on the handle. */
CGCORE_API void cgcore_fs_destroy(cgcore_fs *fs);

/* Reads the whole file at `path` ("/pids/web/pids.current"; absolute in the
 * mount). On success `*data` is a NUL-terminated string to cgcore_free and
 * `*size` (if not null) its length. -ENOENT, -ENOTDIR, -EISDIR, -EACCES as
 * the VFS and cgroupfs give them; -EINVAL for a file without reading. */
CGCORE_API int cgcore_fs_read(cgcore_fs *fs, const char *path, const struct cgcore_caller *caller,
                              char **data, size_t *size);
/* Writes `size` bytes of `data` to the file at `path` as one write(2): one
 * command, all or nothing. The file's own errors as the kernel gives them
 * ("abc" to cgroup.procs: -EINVAL; a full pids.max: -EAGAIN); path and
 * permission errors as cgcore_fs_read. */
CGCORE_API int cgcore_fs_write(cgcore_fs *fs, const char *path, const char *data, size_t size,
                               const struct cgcore_caller *caller);
/* Creates the cgroup directory at `path` with permission bits `mode`
 * (mkdir(2) in the mount). -EEXIST, -ENOENT, -EACCES, -EPERM (where cgroups
 * cannot be made), and cgcore_mkdir's errors. */
CGCORE_API int cgcore_fs_mkdir(cgcore_fs *fs, const char *path, uint32_t mode,
                               const struct cgcore_caller *caller);
/* Removes the cgroup directory at `path` (rmdir(2) in the mount). -EBUSY,
 * -ENOENT, -EACCES, -EPERM, -ENOTDIR. */
CGCORE_API int cgcore_fs_rmdir(cgcore_fs *fs, const char *path,
                               const struct cgcore_caller *caller);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CGCORE_CGCORE_H */
