#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# Build llama.cpp's `llama-server` for the end-to-end test, from the llama.cpp sources that llama-cpp-python's
# source distribution vendors (the package index is the one source of code this machine and CI can reach).
# The sdist is pinned by version and hash in requirements/llama-server.lock; the release it vendors is the one the
# llamacpp role's images are pinned to, so the test runs the server code the cluster runs.
#
#   scripts/build-llama-server.sh DEST RELEASE COMMIT     -> DEST/llama-server (about 7 minutes on 2 cores)
#
# A CPU build without native flags (it must run on any x86-64 CI machine), no web UI (it would be fetched from a
# hub at build time), no OpenSSL (the test speaks plain HTTP on loopback). DEST appears whole or not at all.
set -euo pipefail

dest=${1:?usage: $0 DEST RELEASE COMMIT}
release=${2:?usage: $0 DEST RELEASE COMMIT}
commit=${3:?usage: $0 DEST RELEASE COMMIT}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

for tool in cmake c++ "$python"; do
    command -v "$tool" >/dev/null || { echo "build-llama-server: $tool is missing: install cmake and g++ (Debian: apt-get install cmake g++)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r "$root/requirements/llama-server.lock" -d "$work"
sdist=$(ls "$work"/llama_cpp_python-*.tar.gz)
tar -xzf "$sdist" -C "$work" --wildcards '*/vendor/llama.cpp/*'
src=$(ls -d "$work"/llama_cpp_python-*/vendor/llama.cpp)

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$work/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_NUMBER="${release#b}" -DLLAMA_BUILD_COMMIT="$commit" >"$work/configure.log" \
    || { tail -30 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc)"

mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cp "$work/build/bin/llama-server" "$dest.tmp/llama-server"
"$dest.tmp/llama-server" --version
rm -rf "$dest"
mv "$dest.tmp" "$dest"
