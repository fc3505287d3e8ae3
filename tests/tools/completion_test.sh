#!/usr/bin/env bash
# The bash completions of contrib/completion/: each file loads, and a few
# completions come out as a person would see them (cgctl's cgroup paths
# against a fabricated mount).
#   completion_test.sh CONTRIB_COMPLETION_DIR
set -euo pipefail
dir=$1
for f in "$dir"/*; do
  # shellcheck disable=SC1090
  source "$f"
done
fails=0
# complete WORDS...: what Tab offers after the last word (the cursor there).
complete_line() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMPREPLY=()
  local fn
  fn=$(complete -p "$1" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
  "$fn" 2>/dev/null || true
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() {
  local want=$1
  shift
  local got
  got=$(complete_line "$@")
  if [ "$got" != "$want" ]; then
    echo "FAIL: '$*' completes to '$got', expected '$want'"
    fails=$((fails + 1))
  fi
}
mnt=$(mktemp -d)
trap 'rm -rf "$mnt"' EXIT
mkdir -p "$mnt/pids/web/api" "$mnt/pids/db" "$mnt/memory" "$mnt/.cgcore"
touch "$mnt/pids/cgroup.procs" "$mnt/pids/pids.max" "$mnt/memory/cgroup.procs"

expect "top tree" cgctl t
expect "--tasks" cgdemo --t
expect "hybrid" cgsh --layout h
expect "allow_other,default_permissions" cgcorefs -o allow_other,def
expect "uid=" cgcorefs -o ui
expect "forkexit" cgbench --only fo
expect "pids/db/ pids/web/" cgctl -m "$mnt" tree pids/
expect "/pids/web/api/" cgctl -m "$mnt" get /pids/web/a
expect "pids.max" cgctl -m "$mnt" get -r pids.m
expect "pids.max=" cgctl -m "$mnt" set -r pids.m
CGCORE_MOUNT=$mnt expect "memory/" cgctl tree m
expect "--delay --depth" cgctl top --d
[ $fails -eq 0 ] && echo "bash completion: ok"
exit $fails
