#!/bin/sh
# Builds the default root filesystem as a cpio (newc) archive from Debian's busybox-static:
# /usr/bin/busybox with a link per applet, merged /usr as on Debian 12 (/bin, /sbin, /lib and
# /lib64 lead into /usr, /usr/sbin to /usr/bin), /tmp, /root,
# /home/user, /etc/passwd and /etc/group (root, and E2B's `user`), /etc/hosts (localhost: the sandbox's loopback sockets), /etc/resolv.conf
# (the resolver lelantosd answers for the sandbox, src/net/lel_net_udp.c). Usage:
# mkrootfs.sh OUT.cpio
set -eu
out=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/usr/bin" "$stage/usr/lib" "$stage/usr/lib64" "$stage/tmp" "$stage/root" "$stage/etc" "$stage/home/user"
chmod 1777 "$stage/tmp"
chmod 700 "$stage/root"
cp /bin/busybox "$stage/usr/bin/busybox"
# merged /usr as Debian 12 lays it out (/bin -> usr/bin, /lib -> usr/lib ...), /usr/sbin one with
# /usr/bin: every applet path works (/usr/bin/env in "#!" lines), and programs uploaded with
# Debian's paths find what they look for relative to themselves (gcc's /usr/bin/../lib/gcc)
ln -s bin "$stage/usr/sbin"
for d in bin sbin lib lib64; do
  ln -s "usr/$d" "$stage/$d"
done
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$stage/usr/bin/$a"
done
# E2B's templates have a user `user` (1000) with home /home/user: its processes run as it
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' > "$stage/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' > "$stage/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$stage/etc/hosts"
printf 'nameserver 10.0.2.3\n' > "$stage/etc/resolv.conf"
# everything root's but /home/user, which is user's (so `user` can write its home): a second
# archive after the first, as Linux's initramfs and our guest's unpacker take them
(cd "$stage" && find . ! -path ./home/user | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 &&
  echo ./home/user | cpio --quiet -o -H newc --owner 1000:1000) > "$out.$$.tmp"
mv "$out.$$.tmp" "$out"
