#!/usr/bin/env bash
# Runs a command inside a Linux VM under QEMU's software emulation with AMD SVM turned on, so
# that /dev/kvm exists there as *hardware* KVM (kvm-amd, nested in TCG). This is how the VM
# tests run on machines without a usable /dev/kvm (CI, the development machines), and it is
# the one place the VMX/SVM path of src/vmm is exercised.
#
#   tools/qemu-vm.sh [-m MiB] [-t seconds] [-r tries] [-n] FILE... -- COMMAND [ARGS...]
#
# -n: skipped (77) where this machine's own /dev/kvm is usable, so the same tests run there
# natively (the ASan build: its sanitizers watch the hypervisor code either way; the normal
# build keeps the emulated SVM run, the one test of the VMX/SVM path).
# Each FILE (a binary of the build) is copied into the VM's initramfs at its own absolute path,
# with every shared library ldd names, so compiled-in paths keep working. COMMAND runs in /tmp
# with loopback up; its exit status is this script's. Exit 77 (ctest's "skipped") when QEMU or
# the kernel that tools/setup.sh fetches are missing. With -r N a failed run is tried again, up
# to N runs in all, saying so: nested emulation itself can stall (soft lockups of the VM's
# kernel; the main cause, KVM live-patching its APIC code, is kept away by tools/kvm-hold.c),
# which says nothing about our code; a failure that repeats does.
set -euo pipefail
KDIR=${LEL_QEMU_KERNEL_DIR:-/var/cache/lelantos/qemu-kernel}
mem=4096 limit=900 tries=1 if_no_kvm=0
while [ $# -gt 0 ]; do
  case $1 in
    -m) mem=$2; shift 2 ;;
    -t) limit=$2; shift 2 ;;
    -r) tries=$2; shift 2 ;;
    -n) if_no_kvm=1; shift ;;
    *) break ;;
  esac
done
files=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do files+=("$(readlink -f "$1")"); shift; done
[ $# -gt 1 ] || { echo "usage: $0 [-m MiB] [-t s] [-r tries] [-n] FILE... -- COMMAND..." >&2; exit 2; }
shift
if [ "$if_no_kvm" = 1 ] && [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  echo "qemu-vm: skipped: /dev/kvm is usable here, where the same tests run natively"
  exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -f "$KDIR/vmlinuz" ]; then
  echo "qemu-vm: skipped: qemu-system-x86_64 or $KDIR/vmlinuz missing (tools/setup.sh installs both)"
  exit 77
fi
work=$(mktemp -d /tmp/lel-qemu.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,tmp,lib/kvm}
cp /bin/busybox "$root/bin/busybox"
cp "$KDIR"/*.ko "$root/lib/kvm/"
# see tools/kvm-hold.c: keeps the VM's kernel from live-patching KVM's APIC code mid-run
cc -O2 -static -Wall -Wextra -Werror -o "$root/bin/kvm-hold" "$(dirname "$0")/kvm-hold.c" ||
  echo "qemu-vm: warning: tools/kvm-hold.c did not build; running without it"
for f in "${files[@]}"; do
  for x in "$f" $(ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}'); do
    mkdir -p "$root$(dirname "$x")"
    cp -L "$x" "$root$x"
  done
done
# The command, quoted for the init script.
printf -v cmd '%q ' "$@"
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev # /tmp is the initramfs's own (a tmpfs there would hide files copied under /tmp)
ip link set lo up; ln -sf /proc/self/fd /dev/fd
for m in irqbypass kvm ccp kvm-amd; do insmod /lib/kvm/\$m.ko 2>/dev/null; done
echo "LEL_QEMU_BOOTED"
if [ -c /dev/kvm ]; then
  [ ! -x /bin/kvm-hold ] || /bin/kvm-hold
  # at two thirds of the limit (the VM's clock lags under load), where every user thread
  # sleeps (kernel stacks): tells a hang of the VM's kernel (KVM ioctls) from one of ours
  (sleep $((limit * 2 / 3)); echo "qemu-vm: still running; user threads:"
   for t in /proc/[0-9]*/task/[0-9]*; do
     [ -n "\$(tr -d '\\0' < \$t/cmdline)" ] || continue # kernel threads have no command line
     echo "-- \$t \$(cat \$t/comm) wchan=\$(cat \$t/wchan)"; cat \$t/stack
   done
   echo "qemu-vm: kernel log (soft lockups show the stuck CPU's call trace):"; dmesg | tail -60) &
  ulimit -n 65536 # the kernel default hard limit (4096) would cap lelantosd at ~2000 VMs; systemd gives services 524288
  cd /tmp && $cmd
  echo "LEL_QEMU_RC=\$?"
else
  echo "qemu-vm: no /dev/kvm inside the VM (kvm-amd did not load)"; echo "LEL_QEMU_RC=125"
fi
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")
log=$work/console.log
for try in $(seq "$tries"); do
  # -cpu max under TCG offers SVM with nested paging; MTTCG uses every host core.
  : > "$log"
  timeout "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$(nproc)" -m "$mem" \
    -kernel "$KDIR/vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 loglevel=5 softlockup_all_cpu_backtrace=1 panic=-1" \
    -nographic -no-reboot -monitor none < /dev/null > "$log" 2>&1 &
  qpid=$!
  tail -n +1 -f --pid="$qpid" "$log" | grep --line-buffered -v 'LEL_QEMU_RC=\|LEL_QEMU_BOOTED' &
  tpid=$!
  # the VM's own kernel sometimes stalls early under emulation (seen after "tsc: Unable to
  # calibrate against PIT"): a boot that has not reached init in 120 s is cut short and retried
  for _ in $(seq 120); do
    grep -q LEL_QEMU_BOOTED "$log" && break
    kill -0 "$qpid" 2>/dev/null || break
    sleep 1
  done
  if ! grep -q LEL_QEMU_BOOTED "$log" && kill -0 "$qpid" 2>/dev/null; then
    echo "qemu-vm: the VM's kernel did not reach init in 120 s"
    kill "$qpid" 2>/dev/null
  fi
  wait "$qpid" || true
  wait "$tpid" || true
  rc=$(sed -n "s/.*LEL_QEMU_RC=\([0-9]*\).*/\1/p" "$log" | tail -1)
  if [ -z "$rc" ]; then echo "qemu-vm: the VM ended without the command's exit status (crash or timeout)"; rc=1; fi
  if [ "$rc" = 0 ] || [ "$rc" = 77 ] || [ "$try" = "$tries" ]; then exit "$rc"; fi
  echo "qemu-vm: run $try of $tries failed (status $rc); running it again"
done
