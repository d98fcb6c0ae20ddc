#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# Install Debian's Chromium, the version and hashes requirements/chromium.lock pins, for the browser test:
#
#   scripts/install-chromium.sh DEST     -> DEST/chromium (a link to /usr/lib/chromium/chromium), DEST/version
#
# Chromium needs a few dozen of Debian's libraries, so it is installed (apt-get, as root), not unpacked: the
# packages are downloaded first and installed only when their sha256 is the pinned one. Nothing is done when the
# pinned version is installed already. DEST appears whole or not at all.
set -euo pipefail

dest=$(realpath -m "${1:?usage: $0 DEST}")
root=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t pins < <(grep -v '^#' "$root/requirements/chromium.lock" | grep .)

for tool in apt-get dpkg-query sha256sum; do
    command -v "$tool" >/dev/null || { echo "install-chromium: $tool is missing: this needs a Debian machine" >&2; exit 1; }
done

installed() {  # every pinned package at its pinned version
    local package version digest
    for pin in "${pins[@]}"; do
        read -r package version digest <<<"$pin"
        [ "$(dpkg-query -W -f '${Status} ${Version}' "$package" 2>/dev/null)" = "install ok installed $version" ] || return 1
    done
}

if ! installed; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-chromium: Chromium $(read -r _ v _ <<<"${pins[0]}"; echo "$v") is not installed, and installing it needs root" >&2
        exit 1
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/chromium-install.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"  # apt's download user reads and writes here
    cd "$work"
    wanted=()
    for pin in "${pins[@]}"; do
        read -r package version digest <<<"$pin"
        wanted+=("$package=$version")
    done
    if ! apt-get download -q "${wanted[@]}" >download.log 2>&1; then
        apt-get update -qq >/dev/null
        if ! apt-get download -q "${wanted[@]}" >download.log 2>&1; then
            cat download.log >&2
            echo "install-chromium: Debian no longer has ${wanted[*]}: put the version \`apt-cache policy chromium\` shows, and its hashes, into requirements/chromium.lock" >&2
            exit 1
        fi
    fi
    debs=()
    for pin in "${pins[@]}"; do
        read -r package version digest <<<"$pin"
        deb=$(ls "$work/${package}_"*.deb)
        echo "${digest#sha256:}  $deb" | sha256sum --check --quiet - || { echo "install-chromium: $deb is not the pinned $digest" >&2; exit 1; }
        debs+=("$deb")
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >install.log 2>&1 || { cat install.log >&2; exit 1; }
    installed || { echo "install-chromium: apt-get installed another version than requirements/chromium.lock pins" >&2; exit 1; }
fi

out=$(mktemp -d "$(dirname "$dest")/.chromium.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$dest")"; mktemp -d "$(dirname "$dest")/.chromium.XXXXXX"; })
# the browser itself, not the launcher script in /usr/bin: playwright gives its own flags
ln -s /usr/lib/chromium/chromium "$out/chromium"
chmod 755 "$out"
"$out/chromium" --headless --no-sandbox --version >"$out/version"
rm -rf "$dest"
mv "$out" "$dest"
echo "$dest/chromium: $(cat "$dest/version")"
