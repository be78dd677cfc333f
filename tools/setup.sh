#!/usr/bin/env bash
# Installs the Debian 12 packages Lelantos needs to build, test and benchmark.
# Only what is missing is installed; `apt-get update` runs first because a new
# machine's package lists may be empty. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libh2o-evloop-dev libh2o-dev-common libwslay-dev zlib1g-dev
  librocksdb-dev libmsgpack-dev libzstd-dev libxxhash-dev libjansson-dev libssl-dev libyaml-dev linux-libc-dev
  libcurl4-openssl-dev
  busybox-static cpio
  nghttp2-client wrk h2o curl
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
