#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# Unpack Debian's prometheus and promtool, the version and hash requirements/prometheus.lock pins, for the tests:
#
#   scripts/install-prometheus.sh DEST     -> DEST/prometheus, DEST/promtool
#
# The package is downloaded (apt-get download) and unpacked (dpkg-deb -x), never installed: no service starts and
# nothing outside DEST changes, except the package lists when they are missing and this runs as root. DEST appears
# whole or not at all.
set -euo pipefail

dest=$(realpath -m "${1:?usage: $0 DEST}")
root=$(cd "$(dirname "$0")/.." && pwd)
read -r package version digest < <(grep -v '^#' "$root/requirements/prometheus.lock" | grep .)

for tool in apt-get dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null || { echo "install-prometheus: $tool is missing: this needs a Debian or Ubuntu machine" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download -q "$package=$version" >download.log 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        apt-get download -q "$package=$version" >download.log 2>&1 || { cat download.log >&2; exit 1; }
    else
        cat download.log >&2
        echo "install-prometheus: $package $version could not be downloaded; as root, apt-get update first" >&2
        exit 1
    fi
fi
deb=$(ls "$work"/"${package}"_*.deb)
echo "${digest#sha256:}  $deb" | sha256sum --check --quiet - || { echo "install-prometheus: $deb is not the pinned $digest" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$work/out"
cp "$work/root/usr/bin/prometheus" "$work/root/usr/bin/promtool" "$work/out/"
"$work/out/prometheus" --version >/dev/null
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest/prometheus: $("$dest/prometheus" --version 2>&1 | head -1)"
