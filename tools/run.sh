#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install what is missing, build, and run lelantosd
# with configs/lelantosd.yaml (API on 127.0.0.1:3000, data in ./data, first API key printed).
# Extra arguments go to lelantosd (e.g. --listen 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target lelantosd
exec ./build/src/lelantosd --config configs/lelantosd.yaml "$@"
