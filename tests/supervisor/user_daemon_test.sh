#!/bin/bash
# An ordinary user runs cgcorefs on a mount of their own (through the setuid
# fusermount3, as any unprivileged FUSE daemon mounts) and supervises their
# own processes with cgexec: forks are refused at pids.max, mappings past
# memrlimit's limit fail, the counters say so. Nothing runs as root but the
# set-up.
#
# /dev/fuse is 0600 on some machines (containers), which keeps ordinary
# users from FUSE altogether. Root gives the test a private mount namespace
# in which /dev/fuse is a 0666 node of the same device, as Debian's udev
# rules make it; the host's /dev/fuse and mount table are never touched.
#
# Usage: user_daemon_test.sh CGCOREFS CGEXEC HELPER. Exit 77: skipped.
set -u
CGCOREFS=$(realpath "$1") CGEXEC=$(realpath "$2") HELPER=$(realpath "$3")
USER_ID=65534

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to give the test user a FUSE device"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v fusermount3 >/dev/null || skip "no fusermount3"
[ -u "$(command -v fusermount3)" ] || skip "fusermount3 is not setuid root"
command -v unshare >/dev/null && command -v setpriv >/dev/null || skip "needs unshare and setpriv (util-linux)"
grep -q '^Seccomp:' /proc/self/status || skip "no seccomp"

for b in "$CGCOREFS" "$CGEXEC" "$HELPER"; do
  setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups test -x "$b" ||
    skip "uid $USER_ID cannot run $b (a directory on its path is closed to others)"
done

WORK=$(mktemp -d /tmp/cgcore-user-daemon.XXXXXX) || exit 1
chmod 755 "$WORK"
cleanup() {
  # The namespace goes with its last process; kill what the test started.
  [ -s "$WORK/daemon.pid" ] && kill -9 "$(cat "$WORK/daemon.pid")" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

export CGCOREFS CGEXEC HELPER USER_ID WORK
unshare --mount --propagation private bash -c '
  set -u
  fail() { echo "FAIL: $*"; echo "--- daemon log:"; cat "$WORK/log"; exit 1; }
  as_user() { setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups "$@"; }
  mknod "$WORK/fuse" c 10 229 && chmod 666 "$WORK/fuse" && mount --bind "$WORK/fuse" /dev/fuse ||
    { echo "SKIP: cannot give the test user a FUSE device"; exit 77; }
  mkdir "$WORK/mnt" && chown $USER_ID:$USER_ID "$WORK/mnt"
  setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups \
    "$CGCOREFS" --foreground --no-state --layout hybrid "$WORK/mnt" >"$WORK/log" 2>&1 &
  echo $! >"$WORK/daemon.pid"
  for _ in $(seq 100); do grep -q " $WORK/mnt " /proc/self/mountinfo && break; sleep 0.1; done
  grep " $WORK/mnt " /proc/self/mountinfo | grep -q "user_id=$USER_ID" || fail "the user did not mount"
  uids=$(awk '\''/^Uid:/ { print $2, $3, $4, $5 }'\'' "/proc/$(cat "$WORK/daemon.pid")/status")
  [ "$uids" = "$USER_ID $USER_ID $USER_ID $USER_ID" ] || fail "the daemon runs with uids $uids"
  M=$WORK/mnt
  cd /tmp

  # The roots are the user'\''s: they make cgroups and set limits.
  as_user mkdir "$M/pids/job" "$M/memrlimit/job" || fail "mkdir as the mounting user"
  as_user sh -c "echo 6 > $M/pids/job/pids.max" || fail "pids.max"
  as_user sh -c "echo 256M > $M/memrlimit/job/memrlimit.limit_in_bytes" || fail "memrlimit limit"

  out=$(as_user "$CGEXEC" -m "$M" -g pids,memrlimit:/job -- "$HELPER" threads 10 2>&1)
  [ "$out" = "started 5 refused 5" ] || fail "threads under pids.max=6: $out"
  ev=$(as_user cat "$M/pids/job/pids.events")
  [ "$ev" = "max 5" ] || fail "pids.events: $ev"

  out=$(as_user "$CGEXEC" -m "$M" -g pids,memrlimit:/job -- "$HELPER" mmap 536870912 2>&1)
  [ "$out" = ENOMEM ] || fail "a 512 MiB mapping under a 256 MiB limit: $out"
  [ "$(as_user cat "$M/memrlimit/job/memrlimit.failcnt")" != 0 ] || fail "memrlimit.failcnt stayed 0"
  out=$(as_user "$CGEXEC" -m "$M" -g pids,memrlimit:/job -- "$HELPER" mmap 67108864 2>&1)
  [ "$out" = ok ] || fail "a 64 MiB mapping under a 256 MiB limit: $out"

  # The child is in the cgroup from its first instruction.
  out=$(as_user "$CGEXEC" -m "$M" -g pids:/job -- "$HELPER" child_cgroup "$M" 2>&1)
  case "$out" in *pids:/job*) ;; *) fail "child cgroup: $out" ;; esac

  as_user fusermount3 -u "$M" || fail "fusermount3 -u"
  wait
  echo "PASS"
'
