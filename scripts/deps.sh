#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, if any is missing.
set -euo pipefail
packages=(cmake ninja-build clang g++ libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libreadline-dev libfuse3-dev fuse3 liburing-dev libseccomp-dev pkg-config python3 nlohmann-json3-dev libsystemd-dev help2man)
# scripts/check-install.sh: cpack's .deb (dpkg-shlibdeps, file) and the Rust
# example (Debian's cargo, unless a cargo is already on PATH).
packages+=(dpkg-dev file)
# tests/supervisor/compat_test.sh: unmodified cgroup programs under
# cgexec --compat (libcgroup's tools, systemd-cgls / systemd-cgtop) and
# getfattr / setfattr for cgroup xattrs.
packages+=(cgroup-tools systemd attr)
command -v cargo >/dev/null 2>&1 || packages+=(cargo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
