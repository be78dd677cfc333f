#!/usr/bin/env bash
# Installs the Debian 12 packages Lelantos needs to build, test and benchmark.
# Only what is missing is installed; `apt-get update` runs first because a new
# machine's package lists may be empty. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libh2o-evloop-dev libh2o-dev-common libwslay-dev zlib1g-dev
  librocksdb-dev libmsgpack-dev libzstd-dev libxxhash-dev libjansson-dev libssl-dev libyaml-dev linux-libc-dev
  libcurl4-openssl-dev libarchive-dev
  mmdebstrap
  busybox-static cpio
  nghttp2-client wrk h2o curl
  qemu-system-x86
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
