#!/usr/bin/env bash
# Installs the Debian 12 packages Lelantos needs to build, test and benchmark.
# Only what is missing is installed; `apt-get update` runs first because a new
# machine's package lists may be empty. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libh2o-evloop-dev libh2o-dev-common libwslay-dev zlib1g-dev
  librocksdb-dev libmsgpack-dev libzstd-dev libxxhash-dev libjansson-dev libssl-dev libyaml-dev linux-libc-dev
  libcurl4-openssl-dev libarchive-dev libseccomp-dev
  etcd-server etcd-client
  mmdebstrap
  busybox-static cpio
  clang libclang-rt-14-dev
  nghttp2-client wrk h2o curl
  qemu-system-x86
  chromium prometheus
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=0
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
else
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  updated=1
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# etcd-server is for the cluster tests (test_etcd, test_e2e_cluster), which start their own members
# on free ports: the package's system-wide etcd on :2379 is not needed (where systemd runs, it is
# started on install; stop it with `systemctl disable --now etcd` if unwanted).

# Debian's kernel and its KVM modules, unpacked (not installed) for tools/qemu-vm.sh: the VM
# tests run in a QEMU VM with nested hardware KVM where this machine has no /dev/kvm.
KDIR=${LEL_QEMU_KERNEL_DIR:-/var/cache/lelantos/qemu-kernel}
if [ ! -f "$KDIR/vmlinuz" ]; then
  [ "$updated" -eq 1 ] || $SUDO apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  tmp=$(mktemp -d)
  echo "setup: fetching $pkg for the QEMU VM tests"
  (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null && dpkg-deb -x ./*.deb x)
  $SUDO mkdir -p "$KDIR.new"
  $SUDO cp "$tmp"/x/boot/vmlinuz-* "$KDIR.new/vmlinuz"
  for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd drivers/crypto/ccp/ccp; do
    f=$(find "$tmp"/x/lib/modules -path "*/kernel/$m.ko*" | head -1)
    case $f in
      *.xz) xz -dc "$f" ;; *.zst) zstd -qdc "$f" ;; *) cat "$f" ;;
    esac | $SUDO tee "$KDIR.new/$(basename "$m").ko" >/dev/null
  done
  rm -rf "$tmp" "$KDIR"
  $SUDO mv "$KDIR.new" "$KDIR"
fi

# The E2B SDK suite (tests/e2b) runs the real `e2b` npm package, pinned in its package-lock.json.
# It needs Node >= 20.18.1 (Debian 12's nodejs is 18: NodeSource's or a newer one is needed);
# without it, or offline, that test reports "skipped" and says why.
if ! command -v node >/dev/null 2>&1; then
  echo "setup: installing nodejs and npm for tests/e2b"
  [ "$updated" -eq 1 ] || $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm || echo "setup: nodejs could not be installed; tests/e2b will be skipped"
fi
# Each npm folder pinned by its package-lock.json, installed once per lock (a stamp in its
# node_modules): the E2B SDK suite (tests/e2b), Swagger UI for /docs (tools/docs-ui, served from
# docs.ui_dir), playwright-core for its headless-Chromium test (tests/docs), and our TypeScript
# SDK's one dev dependency, typescript (tools/sdk-js). Offline, the tests that need one report
# "skipped" and say why (/docs answers 404 saying so).
for d in tests/e2b tools/docs-ui tests/docs tools/sdk-js; do
  stamp=$d/node_modules/.lel-lock-sha256
  want=$(sha256sum "$d/package-lock.json" | cut -d' ' -f1)
  if command -v npm >/dev/null 2>&1 && [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: npm ci in $d"
    if (cd "$d" && npm ci --no-audit --no-fund --loglevel=error); then
      echo "$want" > "$stamp"
    else
      echo "setup: npm ci failed in $d (no registry?); the tests that need it will be skipped"
    fi
  fi
done
