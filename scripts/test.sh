#!/usr/bin/env bash
# The whole test suite:
#   1. clang build with -Wthread-safety, warnings as errors: every test (CTest);
#   2. GCC build: the core and file-layer tests (a second compiler's
#      warnings as errors);
#   3. ASan+UBSan build of the core: unit, randomized, controller and
#      file-layer tests;
#   4. ThreadSanitizer build of the core: the concurrency stress test;
#   5. every test through CTest: unit tests, the cgsh scenarios, the host
#      backend and FUSE tests, the kernel-vs-cgcorefs differential harness
#      (those skip, saying why, where root, /dev/fuse or writable kernel
#      cgroups are missing);
#   6. smoke runs of the demo and of `cgbench --quick` (no timing asserted);
#   7. the installed package as other projects use it, before CTest
#      (scripts/check-install.sh: CMake, pkg-config, C, Rust, FetchContent, .deb).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
step() { printf '\n=== %s\n' "$*"; }

step "clang build (thread-safety analysis as errors) + all tests"
cmake -S . -B build -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCGCORE_WERROR=ON >/dev/null
ninja -C build -j"$jobs"
ninja -C build man  # man pages, help2man from each binary's --help

step "GCC build of the core"
cmake -S . -B build-gcc -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCGCORE_CORE_ONLY=ON -DCGCORE_WERROR=ON >/dev/null
ninja -C build-gcc -j"$jobs"
build-gcc/tests/core_test --gtest_brief=1
build-gcc/tests/fs_test --gtest_brief=1

step "ASan+UBSan: core unit and randomized tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCGCORE_CORE_ONLY=ON \
  -DCGCORE_WERROR=ON -DCGCORE_SANITIZE=address >/dev/null
ninja -C build-asan -j"$jobs"
build-asan/tests/core_test --gtest_brief=1
CGCORE_RANDOM_OPS=${CGCORE_RANDOM_OPS_ASAN:-20000} build-asan/tests/core_random_test --gtest_brief=1
build-asan/tests/controllers_test --gtest_brief=1
build-asan/tests/fs_test --gtest_brief=1
build-asan/tests/capi/capi_test --gtest_brief=1

step "ThreadSanitizer: concurrency stress"
cmake -S . -B build-tsan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCGCORE_CORE_ONLY=ON \
  -DCGCORE_WERROR=ON -DCGCORE_SANITIZE=thread >/dev/null
ninja -C build-tsan -j"$jobs" core_stress_test capi_test
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/core_stress_test --gtest_brief=1
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/capi/capi_test --gtest_brief=1

step "smoke: cgdemo and cgbench --quick (figures printed, not asserted)"
build/tools/cgdemo >/dev/null
build/tools/cgbench --quick

step "install: the package as other projects use it"
scripts/check-install.sh build

step "all tests (CTest, clang build)"
ctest --test-dir build --output-on-failure -j"$jobs"
