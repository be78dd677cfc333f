#!/bin/sh
# Builds the default root filesystem as a cpio (newc) archive from Debian's busybox-static:
# /bin/busybox with a link per applet, /tmp, /root, /etc/passwd. Usage: mkrootfs.sh OUT.cpio
set -eu
out=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tmp" "$stage/root" "$stage/etc"
chmod 1777 "$stage/tmp"
chmod 700 "$stage/root"
cp /bin/busybox "$stage/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$stage/etc/passwd"
(cd "$stage" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0) > "$out.tmp"
mv "$out.tmp" "$out"
