#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# ansible-doc every module, lookup, filter and role of the installed collection (make lint): it exits 0 even for a
# plugin it cannot find or document, so anything it says on stderr fails here.
set -euo pipefail

doc=${ANSIBLE_DOC:-ansible-doc}
root=$(cd "$(dirname "$0")/.." && pwd)
names() { ls "$root/$1" | grep -E "$2" | sed -E "s/$2//"; }
failed=0
check() {
    local err
    err=$("$doc" -t "$1" "homelab.ai.$2" 2>&1 >/dev/null) || true
    if [ -n "$err" ]; then
        echo "ansible-doc -t $1 homelab.ai.$2: $err" >&2
        failed=1
    fi
}
for name in $(names plugins/modules '\.py$'); do check module "$name"; done
for name in $(names plugins/lookup '\.py$'); do check lookup "$name"; done
for name in $(names plugins/filter '\.yml$'); do check filter "$name"; done
for name in $(ls "$root/roles"); do check role "$name"; done
exit $failed
