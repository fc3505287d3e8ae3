#!/bin/sh
# v1 memory eventfd notifications (cgroup.event_control) on a cgcorefs mount
# behave as the kernel's: event_control_probe.py's transcript on the mount
# equals the kernel's (event_control.expected, taken on Linux 6.18), and
# equals the host kernel's own when its v1 memory hierarchy is writable here.
# Usage: event_control_test.sh CGCOREFS. Exit 77 (skipped) without root,
# /dev/fuse, fusermount3 or python3.
set -u
BIN=$1
DIR=$(dirname "$0")
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (moves its own children, sets limits, FUSE)"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
for t in fusermount3 python3; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
M=$(mktemp -d /tmp/cgcorefs-evc.XXXXXX)
export XDG_RUNTIME_DIR=$M.run
mkdir -p "$XDG_RUNTIME_DIR"
field() { awk -v k="$1" '$1 == k { print $2 }' "$M/.cgcore/daemon" 2>/dev/null; }
cleanup() {
  SRV=$(field server); KPR=$(field keeper)
  fusermount3 -u "$M" 2>/dev/null
  sleep 0.2
  [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null
  [ -n "$KPR" ] && kill -9 "$KPR" 2>/dev/null
  fusermount3 -u "$M" 2>/dev/null
  rm -rf "$M" "$M.out" "$M.kernel" "$XDG_RUNTIME_DIR"
}
trap cleanup EXIT
"$BIN" --no-state "$M" >/dev/null 2>&1 || { echo "FAIL: cgcorefs did not mount"; exit 1; }
timeout 120 python3 "$DIR/event_control_probe.py" "$M/memory" > "$M.out" 2>&1
if ! diff -u "$DIR/event_control.expected" "$M.out"; then
  echo "FAIL: the mount's transcript differs from the kernel's (above)"
  exit 1
fi
echo "the mount's transcript equals the kernel's ($(wc -l < "$M.out") cases)"
K=/sys/fs/cgroup/memory
if [ -f "$K/cgroup.event_control" ] && mkdir "$K/evc-test.$$" 2>/dev/null; then
  rmdir "$K/evc-test.$$"
  timeout 120 python3 "$DIR/event_control_probe.py" "$K" > "$M.kernel" 2>&1
  if ! diff -u "$M.kernel" "$M.out"; then
    echo "FAIL: the mount's transcript differs from this host kernel's (above)"
    exit 1
  fi
  echo "and this host kernel's"
else
  echo "no writable v1 memory hierarchy here: compared with the recorded transcript only"
fi
