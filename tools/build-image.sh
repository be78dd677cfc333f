#!/usr/bin/env bash
# Builds a Debian root filesystem as a tar ready for `PUT /images/{name}`: Debian's minbase
# variant with the packages asked for (default: python3, nodejs, bash, git, coreutils and what
# scripts reach for), made by Debian's mmdebstrap from this machine's apt sources (the files in
# /etc/apt/sources.list{,.d}), so it works wherever apt does, behind a mirror too.
#
# The result is cached under the cache directory, keyed by the suite, the variant, the package
# list and the apt sources: a second run with the same inputs prints the cached tar at once.
#
#   tools/build-image.sh [-o OUT] [-c CACHE_DIR] [-s SUITE] [-p "pkg pkg ..."] [-a "extra pkgs"] [-z]
#     -o  also copy the tar to OUT
#     -c  cache directory (default $LEL_IMAGE_CACHE or /var/cache/lelantos/images)
#     -s  Debian suite (default bookworm)
#     -p  the package list (replaces the default); -a adds to it
#     -z  zstd-compress the tar (the image store takes either)
# Prints the path of the tar on its last line. Then:
#   curl -X PUT -T "$(tools/build-image.sh | tail -1)" -H "X-API-Key: $KEY" localhost:3000/images/debian-python
set -euo pipefail

suite=bookworm
cache=${LEL_IMAGE_CACHE:-/var/cache/lelantos/images}
out=
zstd=0
pkgs="python3 python3-venv nodejs bash git coreutils findutils grep sed gawk tar gzip xz-utils sqlite3 ca-certificates procps"
extra=
while getopts "o:c:s:p:a:zh" opt; do
    case $opt in
    o) out=$OPTARG ;;
    c) cache=$OPTARG ;;
    s) suite=$OPTARG ;;
    p) pkgs=$OPTARG ;;
    a) extra=$OPTARG ;;
    z) zstd=1 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done

command -v mmdebstrap >/dev/null || { echo "build-image: mmdebstrap is missing (apt-get install mmdebstrap, or tools/setup.sh)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "build-image: run as root (mmdebstrap's root mode keeps owners and modes)" >&2; exit 1; }

# this machine's active apt sources (each file is pasted into the chroot's own)
sources=()
[ -s /etc/apt/sources.list ] && grep -qE '^[[:space:]]*deb ' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "build-image: no apt sources in /etc/apt" >&2; exit 1; }

list=$(echo "$pkgs $extra" | tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort -u | tr '\n' ' ')
key=$( { echo "suite=$suite variant=minbase zstd=$zstd"; echo "$list"; cat "${sources[@]}"; } | sha256sum | cut -c1-16)
ext=tar
[ "$zstd" -eq 1 ] && ext=tar.zst
tarball="$cache/debian-$suite-$key.$ext"
mkdir -p "$cache"

if [ -s "$tarball" ]; then
    echo "build-image: cached ($list)" >&2
else
    echo "build-image: building Debian $suite minbase with: $list" >&2
    tmp="$tarball.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    # usr-merged, as Debian 12 is; /lib/gcc etc. then resolve through /lib -> usr/lib
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar --include="${list// /,}" \
        --aptopt='APT::Install-Recommends "false"' \
        --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
        "$suite" "$tmp.raw" "${sources[@]}"
    if [ "$zstd" -eq 1 ]; then
        zstd -q -T0 -19 --rm "$tmp.raw" -o "$tmp"
    else
        mv "$tmp.raw" "$tmp"
    fi
    mv "$tmp" "$tarball"
    trap - EXIT
fi
if [ -n "$out" ]; then
    cp "$tarball" "$out"
    tarball=$out
fi
echo "build-image: $(du -h "$tarball" | cut -f1) $tarball" >&2
echo "$tarball"
