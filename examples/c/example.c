/* A C program embedding cgcore through its C API: a pids hierarchy with a
 * limit, virtual processes, a refused fork, a migration and the invariant
 * checker. Exits 0 when every step behaved as the kernel's cgroups would.
 *
 * Build: cc example.c $(pkg-config --cflags --libs cgcore-capi), or CMake
 * with find_package(cgcore) and cgcore::capi (CMakeLists.txt here). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cgcore/cgcore.h>
#include <cgcore/version.h>

static int failures;

/* Reports a call that did not return what was expected. */
static void expect(const char *what, int rc, int want) {
  if (rc == want) return;
  fprintf(stderr, "FAIL %s: got %s (%d), want %s: %s\n", what, cgcore_strerror(rc), rc,
          cgcore_strerror(want), cgcore_last_error());
  ++failures;
}

/* Prints a control file of `fs` and returns 0, or the error. */
static int show(cgcore_fs *fs, const char *path) {
  char *text = NULL;
  size_t size = 0;
  int rc = cgcore_fs_read(fs, path, NULL, &text, &size);
  if (rc == 0) printf("%-28s %s", path, size > 0 ? text : "\n");
  cgcore_free(text);
  return rc;
}

int main(void) {
  struct cgcore_engine_options options;
  cgcore_engine *engine = NULL;
  cgcore_fs *fs = NULL;
  cgcore_pid shell = 0, worker = 0, refused = 0;
  char *where = NULL;
  char *problem = NULL;
  char pid_text[16];
  int pids = -1;

  printf("cgcore %s (headers %s)\n", cgcore_version(), CGCORE_VERSION_STRING);

  memset(&options, 0, sizeof options);
  options.size = sizeof options; /* the struct this program was built with */
  options.nr_cpus = 2;
  expect("engine_create", cgcore_engine_create(&options, &engine), 0);
  if (!engine) return 1;

  /* The files, as a hybrid host's /sys/fs/cgroup shows them. */
  expect("fs_create", cgcore_fs_create(engine, "hybrid", &fs), 0);
  if (!fs) return 1;
  expect("mkdir /pids/web", cgcore_fs_mkdir(fs, "/pids/web", 0755, NULL), 0);
  expect("pids.max = 2", cgcore_fs_write(fs, "/pids/web/pids.max", "2", 1, NULL), 0);

  /* A process, moved in by writing its pid, forks until the limit. */
  expect("spawn", cgcore_spawn(engine, 0, &shell), 0);
  snprintf(pid_text, sizeof pid_text, "%d", (int)shell);
  expect("cgroup.procs", cgcore_fs_write(fs, "/pids/web/cgroup.procs", pid_text, strlen(pid_text), NULL), 0);
  expect("fork", cgcore_fork(engine, shell, 0, 0, &worker), 0);
  expect("fork past pids.max", cgcore_fork(engine, shell, 0, 0, &refused), -EAGAIN);
  printf("third fork refused: %s\n", cgcore_last_error());
  show(fs, "/pids/web/cgroup.procs");
  show(fs, "/pids/web/pids.current");

  /* The engine-level API sees the same hierarchy (mounting the same
   * controllers finds it) and moves both processes out in one transaction. */
  expect("mount pids", cgcore_mount(engine, "pids", NULL, &pids), 0);
  expect("task_cgroup", cgcore_task_cgroup(engine, worker, pids, &where), 0);
  printf("worker %d is in %s\n", (int)worker, where ? where : "?");
  cgcore_free(where);
  expect("transfer", cgcore_transfer(engine, pids, "/web", "/"), 0);
  expect("rmdir", cgcore_rmdir(engine, pids, "/web"), 0);

  expect("check_invariants", cgcore_check_invariants(engine, &problem), 0);
  if (problem) fprintf(stderr, "invariant: %s\n", problem);
  cgcore_free(problem);

  expect("engine busy while an fs uses it", cgcore_engine_destroy(engine), -EBUSY);
  cgcore_fs_destroy(fs);
  expect("engine_destroy", cgcore_engine_destroy(engine), 0);

  printf(failures ? "c example: %d failure(s)\n" : "c example: ok\n", failures);
  return failures ? 1 : 0;
}
