#!/bin/sh
# A pid reused is never taken for the old process — while one server runs
# (the mirror), and while no server runs (the journal's restore): in a
# fresh pid namespace (whose /proc/sys/kernel/ns_last_pid the test may set),
# a process is put in pids/a, killed, and its pid handed at once to a new
# process; the next server, restoring the journal, must leave the new one in
# the root. Repeated in a tight loop, so that many reuses fall within one
# clock tick of the old process's start.
# Usage: pid_reuse_test.sh CGCOREFS [ROUNDS]. Exit 77 (skipped) without
# root, /dev/fuse, fusermount3 or unshare.
set -u
BIN=$1
ROUNDS=${2:-20}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (pid namespaces, ns_last_pid, FUSE)"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
for t in unshare fusermount3; do
  command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
unshare -p -f -m --mount-proc true 2>/dev/null || { echo "SKIP: unshare -p -m refused"; exit 77; }

exec unshare -p -f -m --mount-proc --propagation private sh -s "$BIN" "$ROUNDS" <<'INNER'
BIN=$1
ROUNDS=$2
M=$(mktemp -d /tmp/cgcorefs-reuse.XXXXXX)
S=$M.state
# The daemons' control sockets: the servers killed here leave theirs behind.
export XDG_RUNTIME_DIR=$M.run
mkdir -p "$XDG_RUNTIME_DIR"
field() { awk -v k="$1" '$1 == k { print $2 }' "$M/.cgcore/daemon" 2>/dev/null; }
stop_all() {
  SRV=$(field server); KPR=$(field keeper)
  [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null
  [ -n "$KPR" ] && kill -9 "$KPR" 2>/dev/null
  sleep 0.1
  fusermount3 -u "$M" 2>/dev/null
}
trap 'stop_all; rm -rf "$M" "$S" "$XDG_RUNTIME_DIR"' EXIT
"$BIN" --state "$S" "$M" 2>/dev/null || { echo "FAIL: cgcorefs did not mount"; exit 1; }
mkdir "$M/pids/a" || exit 1
# While one server runs: the mirror must see the reuse (pidfs identity)
# even when the new process has the old one's start time.
live_reused=0 live_mistaken=0 live_same_tick=0
i=0
while [ $i -lt "$ROUNDS" ]; do
  i=$((i + 1))
  sleep 100 & P=$!
  echo $P > "$M/pids/a/cgroup.procs" || { echo "FAIL: cannot place $P"; exit 1; }
  PSTART=$(sed 's/.*) //' /proc/$P/stat | cut -d' ' -f20)
  kill -9 $P; wait $P 2>/dev/null
  echo $((P - 1)) > /proc/sys/kernel/ns_last_pid
  sleep 100 & Q=$!
  QSTART=$(sed 's/.*) //' /proc/$Q/stat | cut -d' ' -f20)
  if [ "$Q" = "$P" ]; then
    live_reused=$((live_reused + 1))
    [ "$PSTART" = "$QSTART" ] && live_same_tick=$((live_same_tick + 1))
    sleep 0.5  # two rescans (a child pid namespace has no connector)
    if grep -qx "$Q" "$M/pids/a/cgroup.procs"; then
      live_mistaken=$((live_mistaken + 1))
      echo "live round $i: pid $Q, reused, inherited the dead process's cgroup"
    fi
  fi
  kill -9 $Q; wait $Q 2>/dev/null
done
echo "one server: $live_reused reuses of $ROUNDS rounds ($live_same_tick within the old process's clock tick), $live_mistaken taken for the old process"
stop_all
reused=0 mistaken=0 same_tick=0
i=0
while [ $i -lt "$ROUNDS" ]; do
  i=$((i + 1))
  "$BIN" --state "$S" "$M" 2>/dev/null || { echo "FAIL: cgcorefs did not mount (round $i)"; exit 1; }
  sleep 100 & P=$!
  echo $P > "$M/pids/a/cgroup.procs" || { echo "FAIL: cannot place $P"; exit 1; }
  PSTART=$(sed 's/.*) //' /proc/$P/stat | cut -d' ' -f20)
  kill -9 $P; wait $P 2>/dev/null
  echo $((P - 1)) > /proc/sys/kernel/ns_last_pid
  sleep 100 & Q=$!
  QSTART=$(sed 's/.*) //' /proc/$Q/stat | cut -d' ' -f20)
  stop_all
  "$BIN" --state "$S" "$M" 2>/dev/null || { echo "FAIL: cgcorefs did not mount (round $i)"; exit 1; }
  if [ "$Q" = "$P" ]; then
    reused=$((reused + 1))
    [ "$PSTART" = "$QSTART" ] && same_tick=$((same_tick + 1))
    if grep -qx "$Q" "$M/pids/a/cgroup.procs"; then
      mistaken=$((mistaken + 1))
      echo "round $i: pid $Q, reused, inherited the dead process's cgroup"
    fi
  fi
  kill -9 $Q; wait $Q 2>/dev/null
  stop_all
done
echo "$reused reuses of $ROUNDS rounds ($same_tick within the old process's clock tick), $mistaken taken for the old process"
[ $reused -gt 0 ] && [ $live_reused -gt 0 ] || { echo "FAIL: no pid was reused"; exit 1; }
[ $mistaken -eq 0 ] && [ $live_mistaken -eq 0 ]
INNER
