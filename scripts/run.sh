#!/usr/bin/env bash
# The main job: install what is missing, build, and mount cgcorefs (the
# cgroupfs of an embedded cgcore engine, over the host's real processes) in
# the foreground. Ctrl-C unmounts.
#   scripts/run.sh [MOUNTPOINT] [cgcorefs options: --layout L, --sim, ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
mnt=${1:-/tmp/cgcore}
[ $# -gt 0 ] && shift
# The build's output stays visible: a failure shows its compiler errors, and
# set -e stops here with ninja's status.
cmake -S . -B build -G Ninja -DCMAKE_CXX_COMPILER=clang++ >&2
ninja -C build cgcorefs cgctl >&2
mkdir -p "$mnt"
echo "cgcorefs: mounting on $mnt (Ctrl-C to unmount)" >&2
exec build/tools/cgcorefs --foreground "$@" "$mnt"
