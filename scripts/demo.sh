#!/usr/bin/env bash
# The main job: build cgcore and run the engine demo (cgdemo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
ninja -C build cgdemo >/dev/null
exec build/tools/cgdemo "$@"
