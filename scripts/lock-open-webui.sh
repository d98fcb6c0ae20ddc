#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# Make requirements/open-webui.lock from requirements/open-webui.in, with the hash of every file:
#
#   scripts/lock-open-webui.sh VERSION     (the open-webui release of open_webui_image, e.g. 0.11.3)
#
# pip-compile (pip-tools, in a throwaway venv) resolves the .in, keeping the pins of the lock where it can; open-webui itself is appended with the hash of its
# wheel, for `pip install --no-deps --require-hashes` (the Makefile's .cache/venv-open-webui). To move to another
# release, first copy its Requires-Dist pins into the .in (less accelerate and sentence-transformers). About
# 10 minutes: pip-compile fetches every file it hashes.
set -euo pipefail

version=${1:?usage: $0 VERSION}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d "${TMPDIR:-/tmp}/open-webui-lock.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "pip==25.3" "pip-tools==7.6.2"
"$work/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
    --no-emit-find-links --output-file requirements/open-webui.lock requirements/open-webui.in
"$work/venv/bin/python" -m pip download --quiet --no-deps --dest "$work/wheel" "open-webui==$version"
digest=$(sha256sum "$work"/wheel/open_webui-"$version"-*.whl | cut -d' ' -f1)
{
    echo "open-webui==$version \\"
    echo "    --hash=sha256:$digest"
    echo "    # installed with --no-deps: its requirements are the lines above"
} >>requirements/open-webui.lock
echo "requirements/open-webui.lock: $(grep -c '^[a-z0-9]' requirements/open-webui.lock) packages"
