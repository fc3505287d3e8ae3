#!/usr/bin/env bash
# Checks cgcore as other projects get it. Installs a configured build
# directory (default: build; brought up to date first) into a temporary
# prefix, then, against that prefix only:
#   1. the installed layout: headers, archives, shared libraries and their
#      SONAMEs, the CMake package, the pkg-config files, the tools;
#      libcgcore_capi.so exports the C API and nothing else;
#   2. tests/install/consumer (C++) with find_package(cgcore CONFIG REQUIRED),
#      linked with the archives and with the shared libraries, and run;
#   3. the same program with `pkg-config --cflags --libs cgcore`, run;
#   4. examples/c (the C API) with find_package, against libcgcore_capi.so
#      and against libcgcore_capi.a, and with `pkg-config cgcore-capi`, run;
#   5. examples/rust with `cargo build --offline`, run (skipped, saying so,
#      where cargo is missing);
#   6. the consumer again with cgcore as a FetchContent subproject of it
#      (the source tree: libraries only, no tests or tools);
#   7. `cpack -G DEB`: the .deb holds the libraries, headers and tools.
# Usage: scripts/check-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$(cd "${1:-build}" && pwd)
[ -f "$build/CMakeCache.txt" ] || { echo "check-install: $build is not a configured build directory" >&2; exit 1; }
jobs=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
say() { printf -- '--- check-install: %s\n' "$*"; }
fail() { echo "check-install: FAIL: $*" >&2; exit 1; }

cmake --build "$build" -j"$jobs" >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libcgcore_capi.so.0 -print -quit)")
[ -d "$libdir" ] || fail "libcgcore_capi.so.0 not installed"

say "installed layout in $prefix"
for f in include/cgcore/cgcore.h include/cgcore/version.h include/cgcore/core/engine.h \
         include/cgcore/controllers/registry.h include/cgcore/fs/cgroupfs.h bin/cgsh; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
for lib in core controllers fs capi; do
  [ -e "$libdir/libcgcore_$lib.a" ] || fail "libcgcore_$lib.a not installed"
done
soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
[ "$(soname "$libdir/libcgcore_capi.so")" = libcgcore_capi.so.0 ] || fail "libcgcore_capi SONAME"
major_minor=$(sed -n 's/#define CGCORE_VERSION_STRING "\([0-9]*\.[0-9]*\)\..*"/\1/p' "$prefix/include/cgcore/version.h")
[ "$(soname "$libdir/libcgcore_core.so")" = "libcgcore_core.so.$major_minor" ] || fail "libcgcore_core SONAME"
[ -f "$libdir/cmake/cgcore/cgcoreConfig.cmake" ] && [ -f "$libdir/cmake/cgcore/cgcoreConfigVersion.cmake" ] ||
  fail "CMake package files not installed"
extra=$(nm -D --defined-only "$libdir/libcgcore_capi.so" | awk '{print $NF}' | grep -Ev '^(cgcore_[a-z0-9_]+|CGCORE_0)@@CGCORE_0$|^CGCORE_0$' || true)
[ -z "$extra" ] || fail "libcgcore_capi.so exports more than the C API: $(echo "$extra" | head -5 | tr '\n' ' ')"

say "C++ consumer, find_package(cgcore CONFIG REQUIRED)"
cmake -S tests/install/consumer -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_shared"

say "C++ consumer, pkg-config --cflags --libs cgcore"
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046  # pkg-config's output is a list of words
c++ -std=c++20 tests/install/consumer/consumer.cc $(pkg-config --cflags --libs cgcore) \
  -Wl,-rpath,"$libdir" -o "$tmp/consumer-pc"
"$tmp/consumer-pc"

say "C example, find_package: libcgcore_capi.so and libcgcore_capi.a"
cmake -S examples/c -B "$tmp/c-shared" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCGCORE_WERROR=ON >/dev/null
cmake --build "$tmp/c-shared" >/dev/null
"$tmp/c-shared/cgcore_c_example" >/dev/null
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
grep -qx libcgcore_capi.so.0 <<<"$(needed "$tmp/c-shared/cgcore_c_example")" ||
  fail "C example not linked to libcgcore_capi.so.0"
cmake -S examples/c -B "$tmp/c-static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCGCORE_WERROR=ON \
  -DCGCORE_EXAMPLE_STATIC=ON >/dev/null
cmake --build "$tmp/c-static" >/dev/null
"$tmp/c-static/cgcore_c_example" >/dev/null
! grep -q cgcore <<<"$(needed "$tmp/c-static/cgcore_c_example")" || fail "static C example needs a cgcore .so"

say "C example, pkg-config --cflags --libs cgcore-capi"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Wpedantic -Werror examples/c/example.c $(pkg-config --cflags --libs cgcore-capi) \
  -Wl,-rpath,"$libdir" -o "$tmp/c-pc"
"$tmp/c-pc"

if command -v cargo >/dev/null 2>&1; then
  say "Rust example, cargo build --offline ($(cargo --version))"
  # A copy: cargo writes Cargo.lock beside the manifest, in the format of
  # its own version (an older cargo cannot read a newer one's).
  mkdir "$tmp/rust"
  cp -r examples/rust/Cargo.toml examples/rust/build.rs examples/rust/src "$tmp/rust/"
  CGCORE_LIB_DIR=$libdir cargo build --offline --quiet --manifest-path "$tmp/rust/Cargo.toml" \
    --target-dir "$tmp/rust/target"
  "$tmp/rust/target/debug/cgcore-example"
else
  say "Rust example SKIPPED: cargo is not installed (scripts/deps.sh installs Debian's cargo)"
fi

say "C++ consumer with cgcore as a FetchContent subproject"
cmake -S tests/install/consumer -B "$tmp/subproject" -G Ninja -DCGCORE_SOURCE_DIR="$root" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
grep -q '^CGCORE_BUILD_TESTS:BOOL=OFF' "$tmp/subproject/CMakeCache.txt" || fail "tests are on in a subproject"
cmake --build "$tmp/subproject" -j"$jobs" >/dev/null
"$tmp/subproject/consumer"
[ ! -e "$tmp/subproject/_deps/cgcore-build/tests" ] || fail "a subproject built cgcore's tests"

say "cpack -G DEB"
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/deb" >/dev/null)
deb=$(find "$tmp/deb" -maxdepth 1 -name 'cgcore_*.deb' -print -quit)
[ -n "$deb" ] || fail "no .deb made"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/include/cgcore/cgcore.h ./usr/bin/cgcorefs ./usr/bin/cgsh \
         ./usr/lib/pkgconfig/cgcore.pc ./usr/lib/cmake/cgcore/cgcoreConfig.cmake; do
  grep -q " $f\$" <<<"$contents" || fail "$f missing from $(basename "$deb")"
done
grep -q ' ./usr/lib/libcgcore_capi.so.0 -> ' <<<"$contents" || fail "libcgcore_capi.so.0 missing from the .deb"
say "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
say "all passed"
