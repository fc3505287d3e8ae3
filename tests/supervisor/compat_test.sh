#!/bin/bash
# Unmodified programs under cgexec --compat, against a cgcorefs mount in
# each layout, behave as they do against the kernel's cgroups:
#   * compat_probe (a C program written against the kernel's cgroup v2 API:
#     mount table, statfs, /proc/self/cgroup, clone3(CLONE_INTO_CGROUP),
#     inotify on cgroup.events) prints the same checks as when it runs
#     against the host's cgroup2 in a group of its own;
#   * libcgroup's tools (Debian cgroup-tools) give the same output on the
#     hybrid mount as on the host's own v1 pids hierarchy, and do what they
#     say on the v2 mount;
#   * systemd-cgls and systemd-cgtop show the mount's tree;
#   * /proc/PID/cgroup in a child pid namespace names that namespace's
#     pids (or the host's, with the host's /proc);
#   * xattrs on a cgroup directory (xattr_seq.py, on any mount) answer as
#     on the host's cgroup2.
#
# Usage: compat_test.sh CGCOREFS CGEXEC PROBE. Exit 77: skipped.
set -u
CGCOREFS=$(realpath "$1") CGEXEC=$(realpath "$2") PROBE=$(realpath "$3")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (FUSE mounts, the host's cgroups)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v fusermount3 >/dev/null || skip "no fusermount3"
grep -q '^Seccomp:' /proc/self/status || skip "no seccomp"
[ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup to mount over"

WORK=$(mktemp -d /tmp/cgcore-compat.XXXXXX) || exit 1
chmod 755 "$WORK"  # xattr_seq.py's unprivileged steps reach the mount
# The daemons' state and control sockets live here, not in /run.
export XDG_RUNTIME_DIR=$WORK/run
mkdir -p "$XDG_RUNTIME_DIR"
TAG=cgcore-compat-$$
HOST_GROUPS=()
DAEMONS=()
cleanup() {
  for p in "${DAEMONS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${DAEMONS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  for m in "$WORK"/mnt-*; do
    grep -q " $m " /proc/self/mountinfo && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
  done
  for g in "${HOST_GROUPS[@]}"; do [ -d "$g" ] && rmdir "$g" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }

# Mounts a layout; sets M.
mount_layout() {
  M=$WORK/mnt-$1
  mkdir -p "$M"
  "$CGCOREFS" --foreground --layout "$1" "$M" >"$WORK/log-$1" 2>&1 &
  DAEMONS+=($!)
  for _ in $(seq 100); do grep -qs "^socket " "$M/.cgcore/daemon" && return 0; sleep 0.1; done
  echo "--- daemon log:"; cat "$WORK/log-$1"
  fail "layout $1 did not mount"
  return 1
}

# ---------------------------------------------------------------- the probe
host_cg2=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
mount_layout v2 || exit 1
V2=$M
mkdir "$V2/job"
mount_layout hybrid || exit 1
HY=$M

"$CGEXEC" --compat -m "$V2" -g '*:/job' -- "$PROBE" "$TAG-probe" >"$WORK/probe-v2" 2>"$WORK/probe-v2.err" ||
  fail "compat_probe on the v2 layout: $(cat "$WORK/probe-v2" "$WORK/probe-v2.err")"
"$CGEXEC" --compat -m "$HY" -g 'pids:/' -- "$PROBE" "$TAG-probe" >"$WORK/probe-hybrid" 2>"$WORK/probe-hybrid.err" ||
  fail "compat_probe on the hybrid layout: $(cat "$WORK/probe-hybrid" "$WORK/probe-hybrid.err")"
if [ -n "$host_cg2" ] && [ -w "$host_cg2/cgroup.procs" ]; then
  # The same program on the kernel, in a group of its own.
  mkdir "$host_cg2/$TAG" && HOST_GROUPS+=("$host_cg2/$TAG-probe" "$host_cg2/$TAG")
  sh -c "echo \$\$ > $host_cg2/$TAG/cgroup.procs && exec $PROBE $TAG-probe" >"$WORK/probe-kernel" 2>&1 ||
    fail "compat_probe on the kernel: $(cat "$WORK/probe-kernel")"
  grep -v '^compat_probe:' "$WORK/probe-kernel" >"$WORK/probe-kernel.out"
  for l in v2 hybrid; do
    diff -u "$WORK/probe-kernel.out" "$WORK/probe-$l" || fail "compat_probe on the $l layout differs from the kernel"
  done
else
  echo "note: the host's cgroup2 is not writable: compat_probe runs without its differential check"
fi
grep -q '^ok ' "$WORK/probe-v2" || fail "compat_probe printed no check"

# The C library's mount table, and a path relative to a /proc directory.
"$CGEXEC" --compat -m "$V2" -g '*:/job' -- sh -c \
  'grep -c "^cgroup2 /sys/fs/cgroup cgroup2 " /proc/mounts; cd /proc/self && grep -c "^0::/job$" cgroup;
   grep -c "^0::/job$" /proc/thread-self/cgroup /proc/$$/task/$$/cgroup /proc/$$/cgroup | cut -d: -f2;
   grep -c " - cgroup2 " /proc/$$/mountinfo' \
  >"$WORK/paths" 2>&1
[ "$(cat "$WORK/paths")" = "$(printf '1\n1\n1\n1\n1\n1')" ] ||
  fail "/proc/mounts, thread-self, task/TID, PID or a relative /proc path: $(cat "$WORK/paths")"
if [ -L /etc/mtab ]; then
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- grep -c "^cgroup2 /sys/fs/cgroup " /etc/mtab >"$WORK/mtab" 2>&1
  [ "$(cat "$WORK/mtab")" = 1 ] || fail "/etc/mtab: $(cat "$WORK/mtab")"
fi

# ---------------------------------------------------------- libcgroup tools
if ! command -v cgcreate >/dev/null; then
  echo "note: no cgroup-tools (scripts/deps.sh installs them): libcgroup's tools not tried"
else
  # One session of libcgroup's tools on the pids hierarchy, its output with
  # the group's name as G and hierarchy numbers dropped. Runs as it is (on
  # the kernel) or under `$@`.
  tools_session() {
    local g=$1
    shift
    "$@" sh -c '
      g='"$g"'
      cgcreate -g pids:/$g || echo "cgcreate failed"
      cgset -r pids.max=7 $g || echo "cgset failed"
      cgget -r pids.max $g
      cgget -g pids:/$g
      cgexec -g pids:$g sh -c "grep :pids: /proc/self/cgroup | cut -d: -f2-"
      sleep 30 & s=$!
      cgclassify -g pids:$g $s || echo "cgclassify failed"
      grep -qx $s /sys/fs/cgroup/pids/$g/tasks && echo "classified into $g"
      kill $s; wait $s 2>/dev/null
      lscgroup pids:/ | grep -x "pids:/$g"
      cgdelete -g pids:/$g || echo "cgdelete failed"
      [ -d /sys/fs/cgroup/pids/$g ] && echo "$g still there"
      true' 2>&1 | sed "s/$g/G/g"
  }
  tools_session job2 "$CGEXEC" --compat -m "$HY" -g 'pids:/' -- >"$WORK/tools-hybrid"
  host_pids=$(awk '$0 ~ / - cgroup cgroup .*pids/ { print $5; exit }' /proc/self/mountinfo)
  if [ "$host_pids" = /sys/fs/cgroup/pids ] && [ -w "$host_pids/tasks" ]; then
    HOST_GROUPS+=("$host_pids/$TAG")
    tools_session "$TAG" >"$WORK/tools-kernel"
    diff -u "$WORK/tools-kernel" "$WORK/tools-hybrid" || fail "libcgroup's tools on the hybrid layout differ from the kernel"
  else
    echo "note: the host has no v1 pids hierarchy: libcgroup's tools run without their differential check"
  fi
  grep -q "pids.max: 7" "$WORK/tools-hybrid" || fail "cgget did not show cgset's value: $(cat "$WORK/tools-hybrid")"
  grep -q "^pids:/G$" "$WORK/tools-hybrid" || fail "cgexec or lscgroup: $(cat "$WORK/tools-hybrid")"
  grep -q "classified into G" "$WORK/tools-hybrid" || fail "cgclassify: $(cat "$WORK/tools-hybrid")"
  grep -q "still there\|failed" "$WORK/tools-hybrid" && fail "a tool failed: $(cat "$WORK/tools-hybrid")"
  # lssubsys apart: on a host with controllers that are not mounted (or on
  # v2 only) libcgroup 2.0's lssubsys -am stops at the first mounted on
  # v2, so the kernel gives no comparison.
  "$CGEXEC" --compat -m "$HY" -g 'pids:/' -- lssubsys -am >"$WORK/lssubsys" 2>&1
  [ "$(sort "$WORK/lssubsys")" = "$(for c in $(ls "$HY" | grep -v unified); do echo "$c /sys/fs/cgroup/$c"; done)" ] ||
    fail "lssubsys -am on the hybrid layout: $(cat "$WORK/lssubsys")"

  # v2: the tools find the unified hierarchy through the mount table.
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- sh -c '
    echo +pids > /sys/fs/cgroup/cgroup.subtree_control
    cgcreate -g pids:/v2job && cgset -r pids.max=9 v2job && cgget -nv -r pids.max v2job
    lssubsys -a | grep -x pids
    cgdelete -g pids:/v2job; [ -d /sys/fs/cgroup/v2job ] && echo "v2job still there"; true' \
    >"$WORK/tools-v2" 2>&1
  # libcgroup 2.0's lssubsys names no mount point for v2 controllers.
  [ "$(cat "$WORK/tools-v2")" = "$(printf '9\npids')" ] ||
    fail "libcgroup's tools on the v2 layout: $(cat "$WORK/tools-v2")"
fi

# ------------------------------------------------------------------ systemd
if command -v systemd-cgls >/dev/null; then
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- sh -c 'sleep 30 & s=$!; systemd-cgls --no-pager /job; kill $s' \
    >"$WORK/cgls" 2>&1
  grep -q "Control group /job:" "$WORK/cgls" && grep -q "sleep 30" "$WORK/cgls" ||
    fail "systemd-cgls: $(cat "$WORK/cgls")"
  # Hybrid: systemd finds the tmpfs and unified/ by their magic and shows
  # the unified tree.
  mkdir "$HY/unified/job"
  "$CGEXEC" --compat -m "$HY" -g 'pids:/' -- sh -c \
    'sleep 30 & s=$!; echo $s > /sys/fs/cgroup/unified/job/cgroup.procs; systemd-cgls --no-pager /job; kill $s' \
    >"$WORK/cgls-hybrid" 2>&1
  grep -q "Control group /job:" "$WORK/cgls-hybrid" && grep -q "sleep 30" "$WORK/cgls-hybrid" ||
    fail "systemd-cgls on the hybrid layout: $(cat "$WORK/cgls-hybrid")"
  # -P counts the processes of cgroup.procs. (The CPU column needs two
  # samples, so one iteration shows "-", on the kernel too.)
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- systemd-cgtop -b -n 1 -P --depth=1 >"$WORK/cgtop" 2>&1
  grep -q "^/job " "$WORK/cgtop" || fail "systemd-cgtop -P: $(cat "$WORK/cgtop")"
  # Without -P it counts tasks by pids.current and memory by memory.current,
  # files a cgroup has only where its parent enables the controller; with
  # neither enabled it shows no rows, as on the kernel.
  echo "+pids +memory" >"$V2/cgroup.subtree_control"
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- sh -c 'sleep 30 & s=$!; systemd-cgtop -b -n 1 --depth=1; kill $s' \
    >"$WORK/cgtop-tasks" 2>&1
  grep -Eq "^/job +[1-9][0-9]* " "$WORK/cgtop-tasks" || fail "systemd-cgtop: $(cat "$WORK/cgtop-tasks")"
  echo "-pids -memory" >"$V2/cgroup.subtree_control"
else
  echo "note: no systemd tools: systemd-cgls / systemd-cgtop not tried"
fi

# ------------------------------------------------------------------ xattrs
if [ -n "$host_cg2" ] && [ -w "$host_cg2/cgroup.procs" ] && command -v python3 >/dev/null; then
  SEQ=$(dirname "$(realpath "$0")")/xattr_seq.py
  mkdir "$host_cg2/$TAG-x" && HOST_GROUPS+=("$host_cg2/$TAG-x")
  mkdir "$V2/xattrs"
  python3 "$SEQ" "$host_cg2/$TAG-x" >"$WORK/xattr-kernel" 2>&1
  python3 "$SEQ" "$V2/xattrs" >"$WORK/xattr-v2" 2>&1
  diff -u "$WORK/xattr-kernel" "$WORK/xattr-v2" || fail "xattrs differ from the kernel's"
  grep -q "^set trusted ok" "$WORK/xattr-v2" || fail "xattrs: $(cat "$WORK/xattr-v2")"
  rmdir "$V2/xattrs"
else
  echo "note: the host's cgroup2 is not writable (or no python3): xattrs not compared"
fi

# ------------------------------------------- inotify on a controller's events
# A supervised fork refused at pids.max: pids.events (and .local) of the
# refusing level change and notify; the child's, whose counter stays, not.
if command -v python3 >/dev/null; then
  echo +pids >"$V2/cgroup.subtree_control"
  mkdir -p "$V2/pj/in" && echo +pids >"$V2/pj/cgroup.subtree_control" && echo 1 >"$V2/pj/pids.max"
  python3 "$(dirname "$(realpath "$0")")/inotify_watch.py" 3 "$V2/pj/pids.events" \
    "$V2/pj/pids.events.local" "$V2/pj/in/pids.events" >"$WORK/inotify" 2>&1 &
  w=$!
  for _ in $(seq 50); do grep -qs ready "$WORK/inotify" && break; sleep 0.1; done
  "$CGEXEC" -m "$V2" -g '*:/pj/in' -- sh -c '(true)' >/dev/null 2>&1
  wait $w
  [ "$(grep -v ready "$WORK/inotify")" = "$(printf 'modified pids.events\nmodified pids.events.local\nsilent pids.events')" ] ||
    fail "inotify on pids.events: $(cat "$WORK/inotify")"
fi

# ------------------------------------------- an ordinary user (user namespace)
if command -v setpriv >/dev/null &&
   setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$CGEXEC"; then
  mkdir "$V2/user" && chown 65534:65534 "$V2/user" "$V2/user/cgroup.procs"
  # Started inside its cgroup (v2 delegation: moving in from the root's
  # would need write access to the root's cgroup.procs).
  sh -c "echo \$\$ > $V2/user/cgroup.procs; exec setpriv --reuid=65534 --regid=65534 --clear-groups \
    $CGEXEC --compat -m $V2 -g '*:/user' -- sh -c 'id -u; cat /proc/self/cgroup; \
    grep -c \" /sys/fs/cgroup .* - cgroup2 cgroup2 \" /proc/self/mountinfo; stat -f -c %T /sys/fs/cgroup'" \
    >"$WORK/user" 2>&1
  [ "$(cat "$WORK/user")" = "$(printf '65534\n0::/user\n1\ncgroup2fs')" ] ||
    fail "cgexec --compat as an ordinary user: $(cat "$WORK/user")"
else
  echo "note: uid 65534 cannot run $CGEXEC: --compat in a user namespace not tried"
fi

# ------------------------------------------------------- a child pid namespace
# /proc/PID paths name the pids of the /proc the process sees: its own
# namespace's after --mount-proc (1 is the namespace's init, in /job), the
# host's without (1 is the host's init, in the root).
if command -v unshare >/dev/null && unshare --pid --fork --mount-proc true 2>/dev/null; then
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- unshare --pid --fork --mount-proc sh -c \
    'cat /proc/1/cgroup /proc/1/task/1/cgroup /proc/self/cgroup' >"$WORK/pidns" 2>&1
  [ "$(cat "$WORK/pidns")" = "$(printf '0::/job\n0::/job\n0::/job')" ] ||
    fail "/proc/PID/cgroup in a child pid namespace: $(cat "$WORK/pidns")"
  "$CGEXEC" --compat -m "$V2" -g '*:/job' -- unshare --pid --fork sh -c \
    'cat /proc/1/cgroup /proc/self/cgroup' >"$WORK/pidns-hostproc" 2>&1
  [ "$(cat "$WORK/pidns-hostproc")" = "$(printf '0::/\n0::/job')" ] ||
    fail "/proc/PID/cgroup in a child pid namespace with the host's /proc: $(cat "$WORK/pidns-hostproc")"
else
  echo "note: unshare --pid --mount-proc refused: /proc/PID in a child pid namespace not tried"
fi

# Without --compat nothing changes: the mount table is the kernel's.
"$CGEXEC" -m "$V2" -g '*:/job' -- grep -c ' - fuse.cgcorefs ' /proc/self/mountinfo >"$WORK/plain" 2>&1
[ "$(cat "$WORK/plain")" -ge 1 ] || fail "cgexec without --compat changed the mount table"

[ $FAILED = 0 ] && echo "PASS"
exit $FAILED
