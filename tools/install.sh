#!/usr/bin/env bash
# Installs lelantosd as a system service: the binaries (lelantosd, lelctl and its bash
# completion), the config (/etc/lelantos/lelantosd.yaml, never overwritten), the systemd unit
# (configs/lelantosd.service), a system user `lelantos` (in group kvm for /dev/kvm) and its data
# dir (/var/lib/lelantos, 0700). Run again to upgrade: binaries and unit are replaced, config
# and data kept, the service restarted (a data dir of a newer format is refused by the daemon:
# README "Upgrades"). Needs root, except with --root.
#
#   sudo tools/install.sh [--build-dir DIR] [--prefix /usr/local] [--no-start]
#   tools/install.sh --root STAGING ...   everything under STAGING; no user, no systemctl
set -euo pipefail
cd "$(dirname "$0")/.."

build=build prefix=/usr/local root="" start=1
while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) build=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --root) root=$(realpath -m "$2"); shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument '$1' (--help)" >&2; exit 2 ;;
    esac
done
say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

[ -n "$root" ] || [ "$(id -u)" -eq 0 ] || die "needs root (or --root STAGING to stage the files)"
for b in lelantosd lelctl; do
    [ -x "$build/src/$b" ] || die "$build/src/$b is not built: cmake -B $build -DCMAKE_BUILD_TYPE=Release && make -C $build -j2 lelantosd lelctl"
done

bindir=$root$prefix/bin etc=$root/etc/lelantos data=$root/var/lib/lelantos
unitdir=$root/etc/systemd/system compdir=$root/usr/share/bash-completion/completions
user=lelantos

# the user first, so the files below can be given to it
if [ -z "$root" ]; then
    if ! getent passwd "$user" >/dev/null; then
        useradd --system --home-dir /var/lib/lelantos --no-create-home --shell /usr/sbin/nologin "$user"
        say "user $user created"
    fi
    getent group kvm >/dev/null && usermod -a -G kvm "$user"
fi
own() { [ -n "$root" ] || chown "$@"; }

# binaries: a new file renamed over the old, so a running daemon keeps its own until restarted
install -d -m 0755 "$bindir" "$compdir"
for b in lelantosd lelctl; do
    install -m 0755 "$build/src/$b" "$bindir/.$b.new"
    mv -f "$bindir/.$b.new" "$bindir/$b"
done
"$bindir/lelctl" completion bash > "$compdir/lelctl"
say "binaries in $bindir, bash completion in $compdir/lelctl"

# config: the operator's is never touched; the new defaults go beside it for comparison
install -d -m 0750 "$etc"
own root:"$user" "$etc"
conf=$etc/lelantosd.yaml
sed -e 's|^data_dir: ./data |data_dir: /var/lib/lelantos|' configs/lelantosd.yaml > "$etc/lelantosd.yaml.dist"
grep -q '^data_dir: /var/lib/lelantos' "$etc/lelantosd.yaml.dist" || die "configs/lelantosd.yaml has no 'data_dir: ./data' line to point at /var/lib/lelantos"
chmod 0640 "$etc/lelantosd.yaml.dist"
if [ -e "$conf" ]; then
    say "kept $conf (the defaults of this version: $conf.dist)"
else
    cp -p "$etc/lelantosd.yaml.dist" "$conf"
    say "config $conf (data in /var/lib/lelantos)"
fi
own root:"$user" "$conf" "$etc/lelantosd.yaml.dist"

# data dir: the daemon's alone (records, snapshot images, the first API key)
install -d -m 0700 "$data"
own "$user":"$user" "$data"
say "data dir $data"

# the unit (configs/lelantosd.service), with this install's binary path
unit=configs/lelantosd.service
if [ -f "$unit" ]; then
    install -d -m 0755 "$unitdir"
    sed -e "s|/usr/local/bin/lelantosd|$prefix/bin/lelantosd|g" "$unit" > "$unitdir/lelantosd.service"
    chmod 0644 "$unitdir/lelantosd.service"
    say "unit $unitdir/lelantosd.service"
    if [ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable lelantosd.service >/dev/null
        if [ "$start" -eq 1 ]; then
            systemctl restart lelantosd.service
            say "lelantosd (re)started: systemctl status lelantosd; the first API key: /var/lib/lelantos/initial-api-key"
        fi
    fi
else
    say "warning: $unit is not in this tree: no systemd unit installed (start $prefix/bin/lelantosd --config $conf yourself)"
fi
