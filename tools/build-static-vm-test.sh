#!/usr/bin/env bash
# Builds tests/vm/test_vmm as one static binary (build-static/test_vmm), for running the VM
# tests on a machine that has /dev/kvm but not our build dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build --target lel_guest lel_rootfs >/dev/null
mkdir -p build-static
gcc -O2 -g -static -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -o build-static/test_vmm \
  tests/vm/test_vmm.c src/vmm/lel_vmm.c src/vmm/lel_snapshot.c src/common/lel_util.c \
  src/vmm/lel_rootfs.S -Wa,-Ibuild/src/guest build/src/guest/lel_guest_image.c -lzstd -lxxhash -lcrypto -lpthread
echo build-static/test_vmm
