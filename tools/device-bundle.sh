#!/usr/bin/env bash
# Packs lelantosd, the VM tests and the shared libraries they need (except glibc and
# libstdc++, which any newer distribution has) into build-dev/, so the VM tests can run on a
# machine that has /dev/kvm but not our build dependencies:
#   LD_LIBRARY_PATH=build-dev/lib LELANTOSD=build-dev/bin/lelantosd build-dev/bin/test_e2e_vm
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target lelantosd test_vmm test_e2e_vm vm_bench >/dev/null
rm -rf build-dev && mkdir -p build-dev/bin build-dev/lib
cp build/src/lelantosd build/tests/test_vmm build/tests/test_e2e_vm build/bench/vm_bench build-dev/bin/
for b in build-dev/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|libcurl|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' \
  | xargs -r cp -L -t build-dev/lib/
du -sh build-dev
