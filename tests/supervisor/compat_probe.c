/* compat_probe: a program written against the kernel's cgroup v2 API, as
 * unmodified programs use it. It finds the cgroup2 mount in
 * /proc/self/mountinfo, checks its statfs and fstatfs magic, reads /proc/self/cgroup,
 * makes a cgroup NAME next to its own, starts a child there with
 * clone3(CLONE_INTO_CGROUP) (on ENOSYS the fallback clone3(2) documents:
 * fork, then the parent writes the child into cgroup.procs), waits with
 * inotify on cgroup.events for the group to empty when the child exits, and
 * removes the group.
 *
 *   compat_probe NAME
 *
 * What it finds goes to stdout, one line per check, the same on the kernel
 * and on a cgcore mount under cgexec --compat; how (clone3 or the fallback)
 * goes to stderr. Exit status 0 when every check passed, 1 otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CGROUP2_MAGIC 0x63677270

static int failures;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) failures++;
}

static int read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return 0;
}

/* The mount point of the first cgroup2 entry of the mount table. */
static int cgroup2_mount(char *out, size_t size) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char line[4096];
  int found = -1;
  while (f && found < 0 && fgets(line, sizeof line, f)) {
    char *dash = strstr(line, " - ");
    if (!dash || strncmp(dash + 3, "cgroup2 ", 8) != 0) continue;
    char mp[1024];
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1) {
      snprintf(out, size, "%s", mp);
      found = 0;
    }
  }
  if (f) fclose(f);
  return found;
}

/* The v2 line ("0::PATH") of a /proc/.../cgroup text. */
static int v2_path(const char *text, char *out, size_t size) {
  const char *p = strstr(text, "0::");
  if (!p || (p != text && p[-1] != '\n')) return -1;
  p += 3;
  size_t n = strcspn(p, "\n");
  if (n >= size) return -1;
  memcpy(out, p, n);
  out[n] = 0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: compat_probe NAME\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  char mnt[1024], text[8192], self[4096], group[8192], file[8300];
  check(cgroup2_mount(mnt, sizeof mnt) == 0, "the mount table lists a cgroup2 mount");
  if (failures) return 1;
  struct statfs sf;
  check(statfs(mnt, &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_MAGIC,
        "statfs reports CGROUP2_SUPER_MAGIC");
  check(read_text("/proc/self/cgroup", text, sizeof text) == 0 && v2_path(text, self, sizeof self) == 0,
        "/proc/self/cgroup has a v2 line");
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", self);
  /* The parent of this process's cgroup: a cgroup with processes cannot
   * have children with processes in v2 (unless it is the root). */
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) *slash = 0;
  else snprintf(parent, sizeof parent, "/");
  snprintf(group, sizeof group, "%s%s%s", mnt, strcmp(parent, "/") ? parent : "", "");
  snprintf(group + strlen(group), sizeof group - strlen(group), "/%s", argv[1]);
  check(mkdir(group, 0755) == 0, "mkdir of a cgroup");
  if (failures) return 1;
  struct stat st;
  snprintf(file, sizeof file, "%s/cgroup.events", group);
  check(stat(file, &st) == 0, "the new cgroup has cgroup.events");

  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  int wd = inotify_add_watch(in, file, IN_MODIFY);
  check(in >= 0 && wd >= 0, "inotify watches cgroup.events");

  int pipefd[2], gofd[2], exitfd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0 || pipe2(gofd, O_CLOEXEC) != 0 || pipe2(exitfd, O_CLOEXEC) != 0) return 1;
  int dirfd = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  check(dirfd >= 0 && fstatfs(dirfd, &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_MAGIC,
        "fstatfs on the cgroup's directory reports CGROUP2_SUPER_MAGIC");
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_INTO_CGROUP;
  ca.exit_signal = SIGCHLD;
  ca.cgroup = (uint64_t)dirfd;
  char go = 0;
  long pid = syscall(SYS_clone3, &ca, sizeof ca);
  int fallback = 0;
  if (pid < 0 && errno == ENOSYS) {
    fallback = 1;
    pid = fork();
  }
  if (pid == 0) {
    /* The child: once placed, reports its cgroup, and exits when told. */
    if (fallback && read(gofd[0], &go, 1) != 1) _exit(3);
    char t[8192], p[4096];
    if (read_text("/proc/self/cgroup", t, sizeof t) != 0 || v2_path(t, p, sizeof p) != 0) _exit(4);
    if (write(pipefd[1], p, strlen(p)) < 0) _exit(5);
    close(pipefd[1]);
    if (read(exitfd[0], &go, 1) != 1) _exit(6);
    _exit(0);
  }
  fprintf(stderr, "compat_probe: %s\n", pid < 0 ? strerror(errno) : fallback ? "clone3 ENOSYS: fork, then cgroup.procs" : "clone3(CLONE_INTO_CGROUP)");
  check(pid > 0, "a child is started in the cgroup");
  if (pid <= 0) return 1;
  if (fallback) {
    char procs[8300], num[32];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", group);
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    int n = snprintf(num, sizeof num, "%ld", pid);
    if (fd < 0 || write(fd, num, (size_t)n) != n) check(0, "the child is written into cgroup.procs");
    if (fd >= 0) close(fd);
    if (write(gofd[1], &go, 1) != 1) return 1;
  }
  close(pipefd[1]);
  char where[4096] = "";
  ssize_t got = read(pipefd[0], where, sizeof where - 1);
  if (got > 0) where[got] = 0;
  /* What the child's arrival notified is not what is tested: let it come
   * in, then drop it. */
  usleep(300000);
  char ev[4096];
  while (read(in, ev, sizeof ev) > 0) {
  }
  if (write(exitfd[1], &go, 1) != 1) return 1;
  int status = 0;
  waitpid((pid_t)pid, &status, 0);
  char want[8192];
  snprintf(want, sizeof want, "%s/%s", strcmp(parent, "/") ? parent : "", argv[1]);
  check(strcmp(where, want) == 0, "the child's /proc/self/cgroup names the new cgroup");

  /* The group empties with the child's exit: a waiter re-reads
   * cgroup.events at each IN_MODIFY until it says populated 0, as
   * programs waiting for a cgroup to empty do. */
  struct pollfd pfd = {in, POLLIN, 0};
  int heard = 0, empty = 0;
  for (int i = 0; i < 50 && !empty; i++) {
    if (poll(&pfd, 1, 100) > 0) {
      ssize_t n = read(in, ev, sizeof ev);
      for (char *p = ev; n > 0 && p < ev + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        if (e->wd == wd && (e->mask & IN_MODIFY)) heard = 1;
        p += sizeof *e + e->len;
      }
      empty = heard && read_text(file, text, sizeof text) == 0 && strstr(text, "populated 0") != NULL;
    }
  }
  check(heard, "inotify reports IN_MODIFY on cgroup.events when the cgroup empties");
  check(empty, "cgroup.events says populated 0 after an IN_MODIFY");
  close(dirfd);
  close(in);
  check(rmdir(group) == 0, "rmdir of the emptied cgroup");
  return failures ? 1 : 0;
}
