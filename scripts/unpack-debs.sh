#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# Unpack programs of Debian packages, the versions and hashes a lock file pins, for the tests:
#
#   scripts/unpack-debs.sh requirements/nginx.lock DEST     -> DEST/<each file the lock names>
#
# Each line of the lock: PACKAGE VERSION sha256:DIGEST FILE... (FILE: a path inside the package, copied to DEST by
# its base name). The packages are downloaded (apt-get download) and unpacked (dpkg-deb -x), never installed: no
# service starts and nothing outside DEST changes, except the package lists when they are missing and this runs as
# root. DEST appears whole or not at all.
set -euo pipefail

lock=$(realpath "${1:?usage: $0 LOCK DEST}")
dest=$(realpath -m "${2:?usage: $0 LOCK DEST}")
name=$(basename "$lock" .lock)
mapfile -t pins < <(grep -v '^#' "$lock" | grep .)

for tool in apt-get dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null || { echo "unpack-debs: $tool is missing: this needs a Debian or Ubuntu machine" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/$name-unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download user writes here
cd "$work"
wanted=()
for pin in "${pins[@]}"; do
    read -r package version _ <<<"$pin"
    wanted+=("$package=$version")
done
if ! apt-get download -q "${wanted[@]}" >download.log 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
    fi
    if ! apt-get download -q "${wanted[@]}" >download.log 2>&1; then
        cat download.log >&2
        echo "unpack-debs: ${wanted[*]} could not be downloaded; as root, apt-get update first, or pin the version" \
            "\`apt-cache policy PACKAGE\` shows (and its sha256) in $lock" >&2
        exit 1
    fi
fi
mkdir -p "$work/out"
for pin in "${pins[@]}"; do
    read -r package version digest files <<<"$pin"
    deb=$(ls "$work/${package}_"*.deb)
    echo "${digest#sha256:}  $deb" | sha256sum --check --quiet - || { echo "unpack-debs: $deb is not the pinned $digest" >&2; exit 1; }
    dpkg-deb -x "$deb" "$work/root"
    for file in $files; do
        cp "$work/root/$file" "$work/out/"
    done
done
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest: $(ls "$dest" | tr '\n' ' ')"
